//! The memory budget: how many bytes a run may hold, and the check that comes before
//! anything is allocated.
//!
//! In: `--max-memory` (`8G`, `512MiB`, `1.5GB`, a plain byte count) or nothing, in which
//! case the budget is what the machine has: `MemAvailable` of `/proc/meminfo`, lowered to
//! the cgroup's limit (`memory.max` minus `memory.current`) inside a container and to
//! what `ulimit -v` leaves the process. Out: a
//! [`Budget`], and from [`Budget::check`] either `Ok` or one line that says what is
//! needed, what the budget is and where it comes from, and which part and which tensor
//! (named with the model's dims) is the largest.

use mpc_compiler::memory::show_bytes;
use std::fmt;

/// A byte limit and where it comes from, for messages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    /// `--max-memory`.
    Flag(u128),
    /// Memory the machine (or its cgroup) had available when the run started.
    Machine(u128),
    /// Not known (no `/proc/meminfo`): nothing is refused.
    Unknown,
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Flag(b) => write!(f, "the budget of {} set by --max-memory", show_bytes(*b)),
            Budget::Machine(b) => write!(
                f,
                "the {} this machine has available (--max-memory sets another budget)",
                show_bytes(*b)
            ),
            Budget::Unknown => write!(f, "no budget"),
        }
    }
}

/// A part of what a run needs: its name, bytes, and its largest tensor if any.
pub struct Need {
    pub name: String,
    pub bytes: u128,
    pub largest: Option<String>,
}

impl Budget {
    /// `--max-memory` if given, else the machine's.
    pub fn new(flag: Option<u128>) -> Budget {
        match flag {
            Some(b) => Budget::Flag(b),
            None => machine_available().map_or(Budget::Unknown, Budget::Machine),
        }
    }

    pub fn bytes(&self) -> Option<u128> {
        match self {
            Budget::Flag(b) | Budget::Machine(b) => Some(*b),
            Budget::Unknown => None,
        }
    }

    /// `what` (e.g. `training`) fits, or one line naming the largest part and tensor.
    pub fn check(&self, what: &str, needs: &[Need]) -> Result<(), String> {
        let total: u128 = needs.iter().map(|n| n.bytes).sum();
        let Some(limit) = self.bytes() else { return Ok(()) };
        if total <= limit {
            return Ok(());
        }
        let mut message = format!("{what} needs {} of memory, more than {self}", show_bytes(total));
        if let Some(big) = needs.iter().max_by_key(|n| n.bytes) {
            message += &format!("; the largest part is the {} ({})", big.name, show_bytes(big.bytes));
            if let Some(tensor) = &big.largest {
                message += &format!(", the largest tensor in it {tensor}");
            }
        }
        Err(message)
    }
}

/// `--max-memory 8G`: bytes with an optional unit; k/M/G/T are powers of 1000 (with or
/// without `B`), Ki/Mi/Gi/Ti powers of 1024, as `free` and `numfmt` read them.
pub fn parse_size(s: &str) -> Result<u128, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "ti" | "tib" => 1024.0f64.powi(4),
        _ => return Err(format!("'{s}' is not a size (e.g. 8G, 512MiB, 1.5GB or bytes)")),
    };
    match number.parse::<f64>() {
        Ok(x) if x > 0.0 && (x * scale).is_finite() && x * scale >= 1.0 => Ok((x * scale) as u128),
        _ => Err(format!(
            "'{s}' is not a positive size (e.g. 8G, 512MiB, 1.5GB or bytes)"
        )),
    }
}

/// Bytes available to this process now, if the system says.
fn machine_available() -> Option<u128> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let available = meminfo_kib(&meminfo, "MemAvailable:").or_else(|| meminfo_kib(&meminfo, "MemFree:"))? * 1024;
    let limits = [cgroup_room(), address_space_room()];
    Some(limits.into_iter().flatten().fold(available, u128::min))
}

/// What `ulimit -v` (RLIMIT_AS) leaves this process: the soft limit minus the address
/// space it maps already; `None` when unlimited.
fn address_space_room() -> Option<u128> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max address space"))?;
    let soft: u128 = line["Max address space".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let mapped = meminfo_kib(&status, "VmSize:").unwrap_or(0) * 1024;
    Some(soft.saturating_sub(mapped))
}

fn meminfo_kib(meminfo: &str, key: &str) -> Option<u128> {
    let line = meminfo.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// The cgroup v2 limit minus what the cgroup uses already; `None` without a limit.
fn cgroup_room() -> Option<u128> {
    let read = |f: &str| std::fs::read_to_string(format!("/sys/fs/cgroup/{f}")).ok();
    let max: u128 = read("memory.max")?.trim().parse().ok()?; // "max" means no limit
    let current: u128 = read("memory.current").and_then(|c| c.trim().parse().ok()).unwrap_or(0);
    Some(max.saturating_sub(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_size("8G"), Ok(8_000_000_000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        for bad in ["", "G", "-1G", "0", "1.5.2G", "8X", "nan", "1e400"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_error_names_the_largest_part_and_tensor() {
        let needs = [
            Need {
                name: "parameters".into(),
                bytes: 1000,
                largest: None,
            },
            Need {
                name: "training step".into(),
                bytes: 64_000_000_000,
                largest: Some("a temporary [4000000000, 4] (B = 4000000000)".into()),
            },
        ];
        let e = Budget::Flag(8_000_000_000).check("training", &needs).unwrap_err();
        assert_eq!(
            e,
            "training needs 64.0 GB of memory, more than the budget of 8.00 GB set by --max-memory; the largest \
             part is the training step (64.0 GB), the largest tensor in it a temporary [4000000000, 4] (B = 4000000000)"
        );
        assert!(Budget::Flag(u128::from(u64::MAX)).check("training", &needs).is_ok());
        assert!(Budget::Unknown.check("training", &needs).is_ok());
    }

    #[test]
    fn this_machine_has_a_budget() {
        if cfg!(target_os = "linux") {
            assert!(machine_available().is_some_and(|b| b > 0));
        }
    }
}
