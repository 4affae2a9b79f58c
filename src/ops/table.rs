//! Plain-text output for people: columns aligned with spaces (no box drawing, so the output
//! pastes into tickets and greps well) and durations as `3h05m`.

use std::fmt::Write;

/// A table: an optional header row and data rows, rendered with every column as wide as its
/// widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
    header: bool,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|cell| (*cell).to_owned()).collect()],
            header: true,
        }
    }

    /// Without a header: `name  value` lines, aligned.
    pub fn plain() -> Self {
        Self {
            rows: Vec::new(),
            header: false,
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Whether there is no data row.
    pub fn is_empty(&self) -> bool {
        self.rows.len() == usize::from(self.header)
    }

    /// Each row indented by `indent` spaces; the last column is not padded, so long free text
    /// (an error message) does not leave trailing spaces.
    pub fn render(&self, indent: usize) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = " ".repeat(indent);
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A duration in milliseconds as people read an age or idle time: `850ms`, `42s`, `12m05s`,
/// `3h05m`, `2d04h` (two units at most: more precision is noise here).
pub fn human_ms(ms: u64) -> String {
    const SECOND: u64 = 1_000;
    const MINUTE: u64 = 60 * SECOND;
    const HOUR: u64 = 60 * MINUTE;
    const DAY: u64 = 24 * HOUR;
    match ms {
        ms if ms < SECOND => format!("{ms}ms"),
        ms if ms < MINUTE => format!("{}s", ms / SECOND),
        ms if ms < HOUR => format!("{}m{:02}s", ms / MINUTE, ms % MINUTE / SECOND),
        ms if ms < DAY => format!("{}h{:02}m", ms / HOUR, ms % HOUR / MINUTE),
        ms => format!("{}d{:02}h", ms / DAY, ms % DAY / HOUR),
    }
}

/// `text` cut to `max` characters with `…`, for one-line summaries of free text.
pub fn shorten(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell_and_lines_have_no_trailing_spaces() {
        let mut table = Table::new(&["id", "consumer", "idle"]);
        table.row(vec!["1-0".into(), "order-worker-7d9c".into(), "3s".into()]);
        table.row(vec!["12-345".into(), "order-service".into(), "".into()]);
        assert_eq!(
            table.render(2),
            "  id      consumer           idle\n\
             \x20 1-0     order-worker-7d9c  3s\n\
             \x20 12-345  order-service\n"
        );
    }

    #[test]
    fn durations_read_like_people_write_them() {
        let cases = [
            (0, "0ms"),
            (999, "999ms"),
            (1_000, "1s"),
            (59_999, "59s"),
            (60_000, "1m00s"),
            (725_000, "12m05s"),
            (3_600_000, "1h00m"),
            (11_100_000, "3h05m"),
            (86_400_000, "1d00h"),
            (187_200_000, "2d04h"),
        ];
        for (ms, expected) in cases {
            assert_eq!(human_ms(ms), expected, "{ms} ms");
        }
    }

    #[test]
    fn shortening_keeps_short_text_and_marks_the_cut() {
        assert_eq!(
            shorten("order \"x\" does not exist", 40),
            "order \"x\" does not exist"
        );
        assert_eq!(shorten("abcdefghij", 5), "abcd…");
        assert_eq!(shorten("two\nlines", 20), "two lines");
    }
}
