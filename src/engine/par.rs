//! Work over many cells spread over the cores: reading and checking every
//! manifest, planning every cell. Results keep the order of the items, so
//! what follows (errors, output) is the same whatever the timing.

/// `f` over `items`, in order; on up to one thread per core (at most 8)
/// once there are at least `per_thread` items for each, else on this one.
pub fn map<T: Send, U: Send>(
    items: Vec<T>,
    per_thread: usize,
    f: impl Fn(T) -> U + Sync,
) -> Vec<U> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len() / per_thread.max(1))
        .min(8);
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let mut items = items.into_iter();
    let parts: Vec<Vec<T>> = (0..threads)
        .map(|_| items.by_ref().take(chunk).collect())
        .collect();
    let f = &f;
    std::thread::scope(|scope| {
        let running: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || part.into_iter().map(f).collect::<Vec<_>>()))
            .collect();
        running
            .into_iter()
            .flat_map(|t| match t.join() {
                Ok(done) => done,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_order_of_the_items_on_any_number_of_threads() {
        let items: Vec<u32> = (0..1000).collect();
        let want: Vec<u32> = items.iter().map(|i| i * 3).collect();
        for per_thread in [1, 7, 256, 2000] {
            assert_eq!(super::map(items.clone(), per_thread, |i| i * 3), want);
        }
    }
}
