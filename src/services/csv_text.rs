//! CSV as every export writes it: RFC 4180 through the `csv` crate (quoted where needed,
//! CRLF line ends), with fields a spreadsheet would run as a formula defused — exports
//! carry names that members and API clients chose.

/// Records appended to one buffer; `finish` gives the text.
pub struct CsvText(csv::Writer<Vec<u8>>);

impl Default for CsvText {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvText {
    pub fn new() -> Self {
        CsvText(
            csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(Vec::new()),
        )
    }

    /// One record; each field defused (`=SUM(…)` is written `'=SUM(…)`).
    pub fn record<S: AsRef<str>>(&mut self, fields: &[S]) {
        // Writing into memory cannot fail; a record is dropped rather than panicking.
        let _ = self
            .0
            .write_record(fields.iter().map(|f| defuse(f.as_ref())));
    }

    pub fn finish(self) -> String {
        match self.0.into_inner() {
            Ok(bytes) => String::from_utf8(bytes).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

fn defuse(v: &str) -> std::borrow::Cow<'_, [u8]> {
    if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}").into_bytes().into()
    } else {
        v.as_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_where_needed_formulas_defused_and_lines_end_in_crlf() {
        let mut c = CsvText::new();
        c.record(&["id", "name"]);
        c.record(&["1", "plain"]);
        c.record(&["2", "a,b \"quoted\"\nnext"]);
        c.record(&["3", "=HYPERLINK(\"x\")"]);
        c.record(&["4", "-5"]);
        assert_eq!(
            c.finish(),
            "id,name\r\n1,plain\r\n2,\"a,b \"\"quoted\"\"\nnext\"\r\n3,\"'=HYPERLINK(\"\"x\"\")\"\r\n4,'-5\r\n"
        );
    }
}
