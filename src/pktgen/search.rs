//! Zero-loss throughput search, RFC 2544 section 26.1: the highest offered rate at which the
//! device forwards every frame (or loses no more than a tolerance), found by binary search
//! over trials of a fixed duration.

/// Binary search for the highest rate in `[min, max]` whose trial passes, to within
/// `resolution` pps. `trial(rate)` runs one trial and says whether it passed.
///
/// The first trial is at `max` (the answer when it passes). Then each trial halves the
/// interval between the highest rate known to pass (or `min`) and the lowest known to fail;
/// when no trial passed, `min` itself is tried last. Returns the highest passing rate, `None`
/// when even `min` fails. Trials are at most `2 + log2((max - min) / resolution)`.
pub fn binary_search<E>(
    min: u64,
    max: u64,
    resolution: u64,
    mut trial: impl FnMut(u64) -> Result<bool, E>,
) -> Result<Option<u64>, E> {
    let resolution = resolution.max(1);
    if trial(max)? {
        return Ok(Some(max));
    }
    let (mut lo, mut hi) = (min, max);
    let mut best = None;
    while hi > lo && hi - lo > resolution {
        let mid = lo + (hi - lo) / 2;
        if trial(mid)? {
            best = Some(mid);
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if best.is_none() && min < max && trial(min)? {
        best = Some(min);
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A device that forwards without loss up to `limit` pps; returns the result and the
    /// rates tried.
    fn run(min: u64, max: u64, res: u64, limit: u64) -> (Option<u64>, Vec<u64>) {
        let mut tried = Vec::new();
        let r = binary_search::<Infallible>(min, max, res, |rate| {
            tried.push(rate);
            Ok(rate <= limit)
        })
        .unwrap();
        (r, tried)
    }

    #[test]
    fn finds_the_limit_within_the_resolution() {
        let (r, tried) = run(1_000, 1_000_000, 1_000, 437_123);
        let r = r.unwrap();
        assert!(r <= 437_123 && 437_123 - r <= 1_000, "{r}");
        assert_eq!(tried[0], 1_000_000);
        assert_eq!(tried[1], 500_500);
        assert!(tried.len() <= 2 + 10, "{tried:?}");
    }

    #[test]
    fn max_passing_ends_at_once() {
        assert_eq!(run(1, 100, 1, 1000), (Some(100), vec![100]));
    }

    #[test]
    fn nothing_passes() {
        let (r, tried) = run(100, 1000, 10, 50);
        assert_eq!(r, None);
        assert_eq!(*tried.last().unwrap(), 100, "min is tried last");
    }

    #[test]
    fn only_min_passes() {
        let (r, _) = run(100, 1000, 10, 100);
        assert_eq!(r, Some(100));
    }

    #[test]
    fn exact_with_unit_resolution() {
        for limit in [1u64, 2, 3, 63, 64, 65, 99] {
            let (r, _) = run(1, 100, 1, limit);
            assert_eq!(r, Some(limit), "limit {limit}");
        }
    }

    #[test]
    fn errors_stop_the_search() {
        let mut n = 0;
        let r = binary_search(1, 100, 1, |_| {
            n += 1;
            if n == 3 { Err("boom") } else { Ok(false) }
        });
        assert_eq!(r, Err("boom"));
        assert_eq!(n, 3);
    }
}
