//! Tables as kubectl prints them: upper-case headers, columns three spaces apart, the last
//! column unpadded (it may be a sentence).

pub struct Table {
    rows: Vec<Vec<String>>,
}

const GAP: &str = "   ";

impl Table {
    pub fn new<'a>(headers: impl IntoIterator<Item = &'a str>) -> Table {
        Table {
            rows: vec![headers.into_iter().map(str::to_owned).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|column| {
                let cells = self.rows.iter().filter_map(|row| row.get(column));
                cells.map(|cell| cell.chars().count()).max().unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                if column + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[column] - cell.chars().count();
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                    line.push_str(GAP);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A cell for a value that may be missing.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_the_last_one_is_not_padded() {
        let mut table = Table::new(["NAME", "SPEED", "NOTE"]);
        table.row(vec!["a-long-name".into(), "10".into(), "x".into()]);
        table.row(vec!["b".into(), "1000".into(), "two words".into()]);
        assert_eq!(
            table.render(),
            "NAME          SPEED   NOTE\n\
             a-long-name   10      x\n\
             b             1000    two words\n"
        );
    }

    #[test]
    fn missing_values_are_dashes() {
        assert_eq!(or_dash(None::<u32>), "-");
        assert_eq!(or_dash(Some(5)), "5");
    }
}
