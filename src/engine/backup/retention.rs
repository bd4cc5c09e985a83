//! Retention: which archives `--prune` deletes.

/// Indexes (into a newest-first list of `count` archives) that pruning to `keep`
/// deletes. Only archives that are good (verify, so restore) count: the `keep`
/// newest good ones are kept, and every archive newer than the oldest of them
/// (a bad one is no reason to delete a good one); everything older goes.
/// `keep == 0` keeps everything. `is_good` is asked newest first and only until
/// `keep` good archives are found (it reads a whole file).
pub fn select(count: usize, keep: usize, mut is_good: impl FnMut(usize) -> bool) -> Vec<usize> {
    if keep == 0 {
        return Vec::new();
    }
    let mut good = 0;
    let Some(last_kept) = (0..count).find(|&i| {
        good += usize::from(is_good(i));
        good == keep
    }) else {
        return Vec::new();
    };
    (last_kept + 1..count).collect()
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
    fn counts_only_good_archives() {
        // The two newest are bad: kept, and the two newest good ones too.
        assert_eq!(select(6, 2, |i| i >= 2), vec![4, 5]);
        // The case: the newest does not restore, keep 1: the newest
        // good one stays, only older ones go.
        assert_eq!(select(3, 1, |i| i != 0), vec![2]);
        // Fewer good ones than asked for: nothing is deleted.
        assert_eq!(select(4, 2, |i| i == 3), Vec::<usize>::new());
        assert_eq!(select(4, 1, |_| false), Vec::<usize>::new());
    }

    #[test]
    fn asks_only_until_enough_good_ones_are_found() {
        let mut asked = Vec::new();
        select(6, 2, |i| {
            asked.push(i);
            i != 1
        });
        assert_eq!(asked, vec![0, 1, 2]);
    }
}
