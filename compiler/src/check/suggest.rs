//! "Did you mean ...?": the closest known name to a misspelt one.

/// Edit distance over chars where swapping two neighbours counts as one edit (optimal
/// string alignment), so `adma` is one typo away from `adam`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j - 1] + cost).min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // One typo per three letters; a name of one or two letters is only matched up to
    // case (`b` -> `B`), since any other name that short is one edit away.
    let limit = name.chars().count() / 3;
    candidates
        .into_iter()
        .map(|c| (distance(name, c), c))
        .filter(|&(d, c)| d <= limit || (limit == 0 && c.eq_ignore_ascii_case(name)))
        .min_by_key(|&(d, c)| (d, c))
        .map(|(_, c)| c)
}

/// `= help: did you mean 'x'?` text, if there is a close candidate.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(name, candidates).map(|c| format!("did you mean '{c}'?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_only() {
        assert_eq!(closest("lineer", ["linear", "embed", "mean"]), Some("linear"));
        assert_eq!(closest("tokns", ["tokens", "y"]), Some("tokens"));
        assert_eq!(closest("zzz", ["linear", "embed"]), None);
        assert_eq!(closest("b", ["B", "T"]), Some("B"));
        assert_eq!(closest("h", ["B", "y"]), None);
        assert_eq!(closest("adma", ["sgd", "adam", "adamw"]), Some("adam"));
    }
}
