//! Clock and statistics helpers shared by every benchmark: milliseconds since an
//! `Instant`, medians and 10th percentiles of samples, the process's peak memory.

use std::time::Instant;

/// Milliseconds elapsed since `t`.
pub fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// The median (the mean of the middle two for an even count); NaN for no samples.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The sample at a tenth of the way up (the Python peers' `p10`); NaN for no samples.
pub fn p10(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 10]
}

/// CPU time (user + system, every thread) this process has used so far, in ms, if the
/// kernel reports it: unlike the wall clock, it does not grow when other processes
/// share the cores (`CLOCK_PROCESS_CPUTIME_ID`, to the microsecond).
pub fn cpu_ms() -> Option<f64> {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec, which `t` is.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    (rc == 0).then_some(t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 * 1e-6)
}

/// Peak resident set size in MB (`VmHWM`), if the kernel reports it.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn cpu_time_is_read() {
        let t = cpu_ms().expect("/proc/self/stat");
        assert!(t >= 0.0);
    }

    #[test]
    fn p10_matches_the_python_peers() {
        // Python: sorted(v)[len(v) // 10].
        let v: Vec<f64> = (0..25).rev().map(f64::from).collect();
        assert_eq!(p10(v), 2.0);
    }
}
