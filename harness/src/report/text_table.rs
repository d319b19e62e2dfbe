//! A table of text with one header row, the common form of every table in the renderings:
//! `tables` fills them from a report, and they are drawn as Markdown or terminal text (through
//! `tabled`) or as HTML (by `html`). A row may carry a status, so a failed check can be colored.

use tabled::builder::Builder;
use tabled::settings::Style;

use super::text::escape_markdown;

/// Whether a row reports a judgement, for coloring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowStatus {
    Neutral,
    Passed,
    Failed,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableRow {
    pub cells: Vec<String>,
    pub status: RowStatus,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TextTable {
    header: Vec<String>,
    rows: Vec<TableRow>,
}

impl TextTable {
    pub fn new(header: &[&str]) -> Self {
        TextTable {
            header: header.iter().map(|title| title.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it has exactly one cell per header column.
    pub fn push(&mut self, cells: Vec<String>) {
        self.push_with_status(cells, RowStatus::Neutral);
    }

    pub fn push_with_status(&mut self, cells: Vec<String>, status: RowStatus) {
        assert_eq!(
            cells.len(),
            self.header.len(),
            "a row of table [{}] has {} cells",
            self.header.join(", "),
            cells.len()
        );
        self.rows.push(TableRow { cells, status });
    }

    pub fn header(&self) -> &[String] {
        &self.header
    }

    pub fn rows(&self) -> &[TableRow] {
        &self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A GitHub-flavoured Markdown table; every cell is escaped.
    pub fn to_markdown(&self) -> String {
        let mut builder = Builder::default();
        builder.push_record(self.header.iter().map(|title| escape_markdown(title)));
        for row in &self.rows {
            builder.push_record(row.cells.iter().map(|cell| escape_markdown(cell)));
        }
        let mut table = builder.build();
        table.with(Style::markdown());
        table.to_string()
    }

    /// A plain ASCII table for a terminal or a CI log.
    pub fn to_terminal(&self) -> String {
        let mut builder = Builder::default();
        builder.push_record(self.header.iter().cloned());
        for row in &self.rows {
            builder.push_record(row.cells.iter().map(|cell| cell.replace(['\r', '\n'], " ")));
        }
        let mut table = builder.build();
        table.with(Style::psql());
        table.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_tables_have_a_separator_row_and_escape_cells() {
        let mut table = TextTable::new(&["check", "value"]);
        table.push(vec!["lost".to_string(), "a|b".to_string()]);
        let markdown = table.to_markdown();
        let lines: Vec<&str> = markdown.lines().collect();
        assert_eq!(lines.len(), 3, "{markdown}");
        assert!(lines[0].starts_with("| check"), "{markdown}");
        assert!(lines[1].starts_with("|--"), "{markdown}");
        assert!(lines[2].contains("a\\|b"), "{markdown}");
    }

    #[test]
    #[should_panic(expected = "has 1 cells")]
    fn rows_must_fill_the_header() {
        TextTable::new(&["a", "b"]).push(vec!["only one".to_string()]);
    }
}
