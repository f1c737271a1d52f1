//! CSV files: one sample per line, its values flattened in row-major order.
//!
//! In: the text of a file. Out: the lines that hold data, each split into trimmed
//! fields with its 1-based line number. Fields are separated by commas; blank lines are
//! skipped; a first line whose fields are all non-numeric (`tok0,tok1,...`) is a header
//! and skipped too. Numbers are read by the caller (`column.rs`), which knows the
//! dtype the model wants. A UTF-8 byte order mark at the start is skipped.

/// The data lines of a CSV file.
pub struct Table<'a> {
    /// Whether the first line was a header (and skipped).
    pub header: bool,
    /// (1-based line number, fields)
    pub rows: Vec<(usize, Vec<&'a str>)>,
}

fn is_number(field: &str) -> bool {
    field.parse::<f64>().is_ok()
}

pub fn parse(text: &str) -> Table<'_> {
    // A UTF-8 byte order mark (Excel and Notepad write one) is not part of the first
    // field: left in, it would make a numeric first line look like a header.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows: Vec<(usize, Vec<&str>)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.split(',').map(str::trim).collect()))
        .collect();
    let header = rows
        .first()
        .is_some_and(|(_, fields)| fields.iter().all(|f| !is_number(f)));
    if header {
        rows.remove(0);
    }
    Table { header, rows }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blank_lines_and_crlf() {
        let t = parse("a, b\r\n1, 2\r\n\r\n3,4.5e0\r\n");
        assert!(t.header);
        assert_eq!(t.rows, vec![(2, vec!["1", "2"]), (4, vec!["3", "4.5e0"])]);
        let t = parse("1,2\nx,3\n");
        assert!(!t.header);
        assert_eq!(t.rows.len(), 2);
        // A mixed first line is data (its bad field is reported by the loader).
        assert!(!parse("x,1\n").header);
        assert!(parse("").rows.is_empty());
    }
}
