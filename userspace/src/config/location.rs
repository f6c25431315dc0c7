//! Maps byte spans in the config text to line numbers and dotted key
//! paths, so every error can say where it comes from.

use std::ops::Range;
use std::path::Path;

use toml_edit::{ImDocument, Item};

use super::{ConfigError, Location};

/// The text being parsed, with the offsets of its newlines precomputed so
/// that a file with thousands of inline reservations does not rescan the
/// text for each span.
pub struct Source<'a> {
    pub path: &'a Path,
    pub file: String,
    pub text: &'a str,
    newlines: Vec<usize>,
}

impl<'a> Source<'a> {
    pub fn new(text: &'a str, path: &'a Path) -> Self {
        let newlines = text
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .map(|(i, _)| i)
            .collect();
        Source {
            path,
            file: path.display().to_string(),
            text,
            newlines,
        }
    }

    /// 1 + the number of newlines before `offset`.
    pub fn line(&self, offset: usize) -> usize {
        1 + self.newlines.partition_point(|&n| n < offset)
    }

    pub fn at(&self, span: &Range<usize>) -> Location {
        Location {
            file: self.file.clone(),
            line: Some(self.line(span.start)),
        }
    }

    pub fn invalid(
        &self,
        span: &Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            at: self.at(span),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Keeps toml's message and adds the line and, when the text parses as
    /// TOML at all, the key the span falls in (toml's type errors such as
    /// "invalid type: integer `5`, expected a string" do not name it).
    pub fn toml_error(&self, e: toml::de::Error) -> ConfigError {
        let span = e.span();
        let key = span.as_ref().and_then(|s| {
            let doc = ImDocument::parse(self.text).ok()?;
            key_at(doc.as_item(), s.start, String::new())
        });
        ConfigError::Toml {
            at: Location {
                file: self.file.clone(),
                line: span.map(|s| self.line(s.start)),
            },
            key,
            message: e.message().to_owned(),
        }
    }
}

fn contains(span: Option<Range<usize>>, pos: usize) -> bool {
    span.is_some_and(|s| s.contains(&pos) || (s.is_empty() && s.start == pos))
}

/// The innermost dotted key path ("subnet[1].lease_time") whose key or
/// value covers `pos`.
fn key_at(item: &Item, pos: usize, path: String) -> Option<String> {
    if let Some(tables) = item.as_array_of_tables() {
        return tables
            .iter()
            .enumerate()
            .find_map(|(i, t)| key_at(&Item::Table(t.clone()), pos, format!("{path}[{i}]")));
    }
    if let Some(array) = item.as_array() {
        let inner = array
            .iter()
            .enumerate()
            .find_map(|(i, v)| key_at(&Item::Value(v.clone()), pos, format!("{path}[{i}]")));
        if inner.is_some() {
            return inner;
        }
    } else if let Some(table) = item.as_table_like() {
        for (name, _) in table.iter() {
            let Some((key, child)) = table.get_key_value(name) else {
                continue;
            };
            let child_path = if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            };
            if contains(key.span(), pos) {
                return Some(child_path);
            }
            if let Some(found) = key_at(child, pos, child_path) {
                return Some(found);
            }
        }
    }
    (!path.is_empty() && contains(item.span(), pos)).then_some(path)
}
