//! Retention: which archives `--prune` deletes.

/// Indexes (into a newest-first list of `count` archives) that pruning to `keep`
/// deletes: all beyond the `keep` newest, except the newest good one, which is
/// never deleted. `keep == 0` keeps everything. `is_good` is asked newest first
/// and only until the first good archive is found (it usually hashes a file).
pub fn select(count: usize, keep: usize, mut is_good: impl FnMut(usize) -> bool) -> Vec<usize> {
    if keep == 0 || count <= keep {
        return Vec::new();
    }
    let newest_good = (0..count).find(|&i| is_good(i));
    (keep..count).filter(|&i| Some(i) != newest_good).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_n() {
        assert_eq!(select(5, 2, |_| true), vec![2, 3, 4]);
        assert_eq!(select(2, 2, |_| true), Vec::<usize>::new());
        assert_eq!(select(5, 0, |_| true), Vec::<usize>::new());
    }

    #[test]
    fn never_deletes_the_newest_good_archive() {
        // The two newest are corrupt: the third (newest good) survives.
        assert_eq!(select(5, 2, |i| i >= 2), vec![3, 4]);
        // None good: plain count-based pruning.
        assert_eq!(select(4, 1, |_| false), vec![1, 2, 3]);
    }

    #[test]
    fn asks_only_until_the_first_good_one() {
        let mut asked = Vec::new();
        select(6, 2, |i| {
            asked.push(i);
            i == 1
        });
        assert_eq!(asked, vec![0, 1]);
    }
}
