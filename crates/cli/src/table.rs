//! Plain, aligned tables for `status` and `backup list` (comfy-table, with
//! no borders), each row optionally followed by indented note lines.

use comfy_table::{Cell, CellAlignment, ColumnConstraint, Table as Comfy, Width};

/// A column: its header, its minimum width, and whether it is right-aligned.
pub struct Column {
    header: &'static str,
    min: u16,
    right: bool,
    gap: u16,
}

impl Column {
    /// `gap` spaces after it instead of one.
    pub fn gap(mut self, gap: u16) -> Self {
        self.gap = gap;
        self
    }
}

/// A left-aligned column at least `min` wide.
pub fn left(header: &'static str, min: u16) -> Column {
    Column { header, min, right: false, gap: 1 }
}

/// A right-aligned (numeric) column at least `min` wide.
pub fn right(header: &'static str, min: u16) -> Column {
    Column { header, min, right: true, gap: 1 }
}

/// Rows, and the notes printed under each.
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<(Vec<String>, Vec<String>)>,
}

impl Table {
    /// A table with these columns.
    pub fn new(columns: impl IntoIterator<Item = Column>) -> Self {
        Self { columns: columns.into_iter().collect(), rows: Vec::new() }
    }

    /// Adds a row; `notes` are printed under it, indented by two spaces.
    pub fn row(&mut self, cells: impl IntoIterator<Item = String>, notes: Vec<String>) {
        self.rows.push((cells.into_iter().collect(), notes));
    }

    /// The table as text: one space between columns, no trailing spaces.
    pub fn render(&self) -> String {
        let mut t = Comfy::new();
        t.load_style(comfy_table::presets::NOTHING);
        t.set_header(self.columns.iter().map(|c| {
            let cell = Cell::new(c.header);
            if c.right { cell.set_alignment(CellAlignment::Right) } else { cell }
        }));
        for (cells, _) in &self.rows {
            t.add_row(cells.clone());
        }
        for (i, c) in self.columns.iter().enumerate() {
            if let Some(col) = t.column_mut(i) {
                col.set_padding((0, c.gap));
                // The boundary counts the padding too.
                col.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(c.min + c.gap)));
                if c.right {
                    col.set_cell_alignment(CellAlignment::Right);
                }
            }
        }
        let mut lines = t.lines().map(|l| l.trim_end().to_string());
        let mut out = lines.next().unwrap_or_default();
        for ((_, notes), line) in self.rows.iter().zip(lines) {
            out.push('\n');
            out.push_str(&line);
            for n in notes {
                out.push_str("\n  ");
                out.push_str(n);
            }
        }
        out
    }
}
