//! Symbolic sizes: a dim is a polynomial over named dims with integer coefficients
//! (`B`, `64`, `T*64`, `2*T`, `T + 16`), kept in a normal form so that equal sizes
//! compare equal however they were built (`flatten`, `concat`).
//!
//! In: dim names and literals from the AST. Out: sizes the checker compares and prints
//! in diagnostics (`[B, 64]`), and that lowering evaluates once dims have values.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Sum of `coefficient * product(names)` terms; the empty product is the constant term.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Dim {
    terms: BTreeMap<Vec<String>, i64>,
}

impl Dim {
    pub fn lit(n: i64) -> Dim {
        let mut terms = BTreeMap::new();
        if n != 0 {
            terms.insert(Vec::new(), n);
        }
        Dim { terms }
    }

    pub fn named(name: &str) -> Dim {
        Dim {
            terms: BTreeMap::from([(vec![name.to_string()], 1)]),
        }
    }

    /// The value when the dim is a plain number.
    pub fn as_lit(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Vec::new()).copied(),
            _ => None,
        }
    }

    pub fn add(&self, other: &Dim) -> Dim {
        let mut terms = self.terms.clone();
        // Saturating: an absurd size stays absurd (and fails to evaluate) instead of
        // overflowing.
        for (k, v) in &other.terms {
            let t = terms.entry(k.clone()).or_insert(0);
            *t = t.saturating_add(*v);
        }
        terms.retain(|_, v| *v != 0);
        Dim { terms }
    }

    pub fn mul(&self, other: &Dim) -> Dim {
        let mut terms: BTreeMap<Vec<String>, i64> = BTreeMap::new();
        for (ka, va) in &self.terms {
            for (kb, vb) in &other.terms {
                let mut k: Vec<String> = ka.iter().chain(kb).cloned().collect();
                k.sort();
                let t = terms.entry(k).or_insert(0);
                *t = t.saturating_add(va.saturating_mul(*vb));
            }
        }
        terms.retain(|_, v| *v != 0);
        Dim { terms }
    }

    /// `self / divisor` when the divisor is one term (`8`, `H*4`) that divides every term
    /// of `self` exactly (`(E + N)*64 / 8*8 = E + N`); `None` otherwise.
    pub fn div_exact(&self, divisor: &Dim) -> Option<Dim> {
        let [(names, coef)] = divisor.terms.iter().collect::<Vec<_>>()[..] else {
            return None;
        };
        let mut terms = BTreeMap::new();
        for (k, v) in &self.terms {
            let mut rest = k.clone();
            for n in names {
                let at = rest.iter().position(|r| r == n)?;
                rest.remove(at);
            }
            if v % coef != 0 {
                return None;
            }
            terms.insert(rest, v / coef);
        }
        Some(Dim { terms })
    }

    /// The size for concrete dim values; `None` if a name has no value or it overflows.
    pub fn eval(&self, values: &HashMap<String, usize>) -> Option<usize> {
        let mut total: i64 = 0;
        for (names, coef) in &self.terms {
            let mut term = *coef;
            for n in names {
                term = term.checked_mul(*values.get(n)? as i64)?;
            }
            total = total.checked_add(term)?;
        }
        usize::try_from(total).ok()
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        // Named terms first (B*T before the constant), as people write them.
        let mut terms: Vec<_> = self.terms.iter().collect();
        terms.sort_by_key(|(k, _)| k.is_empty());
        for (i, (names, coef)) in terms.into_iter().enumerate() {
            if i > 0 {
                f.write_str(" + ")?;
            }
            let mut parts: Vec<String> = names.clone();
            if *coef != 1 || names.is_empty() {
                parts.push(coef.to_string());
            }
            f.write_str(&parts.join("*"))?;
        }
        Ok(())
    }
}

/// `[B, 64]`
pub fn show_shape(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// The product of `dims` (1 for none).
pub fn product(dims: &[Dim]) -> Dim {
    dims.iter().fold(Dim::lit(1), |acc, d| acc.mul(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_form_and_display() {
        let b = Dim::named("B");
        let t = Dim::named("T");
        assert_eq!(product(&[t.clone(), Dim::lit(64)]).to_string(), "T*64");
        assert_eq!(product(&[Dim::lit(64), t.clone()]), product(&[t.clone(), Dim::lit(64)]));
        assert_eq!(t.add(&t).to_string(), "T*2");
        assert_eq!(b.add(&Dim::lit(16)).to_string(), "B + 16");
        assert_eq!(Dim::lit(64).add(&Dim::lit(64)), Dim::lit(128));
        let values = HashMap::from([("B".to_string(), 4), ("T".to_string(), 3)]);
        assert_eq!(product(&[b, t, Dim::lit(2)]).eval(&values), Some(24));
        assert_eq!(Dim::named("X").eval(&values), None);
    }

    #[test]
    fn exact_division_by_one_term() {
        let (e, n) = (Dim::named("E"), Dim::named("N"));
        let rows = e.add(&n);
        let total = product(&[rows.clone(), Dim::lit(8), Dim::lit(4)]);
        assert_eq!(total.div_exact(&Dim::lit(32)), Some(rows.clone()));
        assert_eq!(total.div_exact(&product(&[Dim::lit(2), e.clone()])), None);
        assert_eq!(Dim::lit(30).div_exact(&Dim::lit(4)), None);
        let h = Dim::named("H");
        assert_eq!(product(&[h.clone(), e.clone()]).div_exact(&h), Some(e));
        assert_eq!(rows.div_exact(&rows), None, "only a one-term divisor");
    }
}
