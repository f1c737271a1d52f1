//! Memory planning: temporaries share one arena, placed by liveness.
//!
//! In: a [`Program`]. Out: a byte offset in the arena for every `Temp` buffer and the
//! arena's size. Two temporaries share bytes only if no kernel touches both while both
//! are live (first writer to last reader, in kernel order). Arguments and outputs live
//! outside the arena (the caller owns them), so a step allocates nothing.

use super::analysis::touched;
use super::{BufKind, Program};

/// Bytes every buffer offset is a multiple of.
pub const ALIGN: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Byte offset in the arena of each buffer (`None` for arguments and outputs).
    pub offsets: Vec<Option<usize>>,
    pub arena_bytes: usize,
}

/// Kernel index range `[first, last]` in which each buffer is touched.
fn live_ranges(p: &Program) -> Vec<Option<(usize, usize)>> {
    let mut live: Vec<Option<(usize, usize)>> = vec![None; p.buffers.len()];
    let mut touch = |b: usize, k: usize| {
        live[b] = Some(match live[b] {
            None => (k, k),
            Some((f, l)) => (f.min(k), l.max(k)),
        })
    };
    for (k, kernel) in p.kernels.iter().enumerate() {
        for b in touched(kernel) {
            touch(b, k);
        }
    }
    live
}

pub fn plan(p: &Program) -> Plan {
    let live = live_ranges(p);
    let mut offsets = vec![None; p.buffers.len()];
    // (offset, bytes, first, last) of placed temporaries.
    let mut placed: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut order: Vec<usize> = (0..p.buffers.len())
        .filter(|&b| p.buffers[b].kind == BufKind::Temp && live[b].is_some())
        .collect();
    order.sort_by_key(|&b| (live[b].unwrap().0, std::cmp::Reverse(p.buffers[b].len)));
    let mut arena = 0;
    for b in order {
        let (first, last) = live[b].unwrap();
        let bytes = (p.buffers[b].len * 4).div_ceil(ALIGN).max(1) * ALIGN;
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&(_, _, f, l)| f <= last && first <= l)
            .map(|&(o, n, _, _)| (o, o + n))
            .collect();
        busy.sort();
        let mut at = 0;
        for (s, e) in busy {
            if at + bytes <= s {
                break;
            }
            at = at.max(e);
        }
        placed.push((at, bytes, first, last));
        offsets[b] = Some(at);
        arena = arena.max(at + bytes);
    }
    Plan {
        offsets,
        arena_bytes: arena,
    }
}
