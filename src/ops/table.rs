//! Plain-text output for people: columns aligned with spaces (no box drawing, so the output
//! pastes into tickets and greps well) and durations as `3h05m`.

/// A table: an optional header row and data rows, rendered by `comfy-table` with no lines
/// drawn and every column as wide as its widest cell, two spaces apart.
pub struct Table {
    inner: comfy_table::Table,
    rows: usize,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        let mut table = Self::plain();
        table.inner.set_header(header.to_vec());
        table
    }

    /// Without a header: `name  value` lines, aligned.
    pub fn plain() -> Self {
        let mut inner = comfy_table::Table::new();
        // Never wrapped to the terminal's width: a wrapped line no longer greps as one.
        inner
            .load_style(comfy_table::presets::NOTHING)
            .set_content_arrangement(comfy_table::ContentArrangement::Disabled);
        Self { inner, rows: 0 }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.inner.add_row(cells);
        self.rows += 1;
    }

    /// Whether there is no data row.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Each row indented by `indent` spaces; lines end at their last character, so long free
    /// text in the last column (an error message) leaves no trailing spaces.
    pub fn render(&self, indent: usize) -> String {
        let mut table = self.inner.clone();
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        let margin = " ".repeat(indent);
        table
            .lines()
            .map(|line| format!("{margin}{}\n", line.trim_end()))
            .collect()
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
