//! The JSON log line, written straight into the line: the shape `tracing-subscriber`'s own
//! `json()` writes (`timestamp`, `level`, `fields`, `target`, the current `span`), which log
//! collectors and operators' greps know, at a fraction of its cost. Its lines build each field
//! as a `serde_json::Value` and parse the span's fields back from text for every line; here a
//! span's fields are kept as the text of the line (`"name":value,…`), written once when the span
//! is made and copied into each line made in it, and every value is escaped by `serde_json` on
//! its way to the line, nothing allocated per field.

use std::fmt;
use std::io;

use serde::Serializer as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter.
pub struct Lines;

/// The field formatter: `"name":value` pairs, comma-separated, with no braces, so that a span's
/// can be copied into a line as they are.
pub struct Fields;

impl<S> FormatEvent<S, Fields> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, Fields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\",\"fields\":{{", meta.level())?;
        event.record(&mut Pairs::new(&mut writer, true));
        writer.write_str("},\"target\":")?;
        string(&mut writer, meta.target())?;
        let span = (event.parent().and_then(|id| ctx.span(id))).or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<Fields>>() {
                if !fields.is_empty() {
                    writer.write_str(fields)?;
                    writer.write_char(',')?;
                }
            }
            writer.write_str("\"name\":")?;
            string(&mut writer, span.name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

impl<'w> FormatFields<'w> for Fields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut pairs = Pairs::new(&mut writer, true);
        fields.record(&mut pairs);
        pairs.result
    }

    /// A value recorded later (`span.record`) is appended to those the span was made with.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut writer = current.as_writer();
        let mut pairs = Pairs::new(&mut writer, first);
        fields.record(&mut pairs);
        pairs.result
    }
}

/// Writes the fields it visits as `"name":value` pairs; the first error stops it.
struct Pairs<'a, 'w> {
    out: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl<'a, 'w> Pairs<'a, 'w> {
    fn new(out: &'a mut Writer<'w>, first: bool) -> Self {
        Self {
            out,
            first,
            result: Ok(()),
        }
    }

    fn pair(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'w>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.out.write_char(',')?;
            }
            string(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl Visit for Pairs<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.pair(field, |out| {
            json(out, |s| s.collect_str(&format_args!("{value:?}")))
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, |out| string(out, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.pair(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.pair(field, |out| json(out, |s| s.serialize_f64(value)));
    }
}

/// `text` as a JSON string.
fn string(out: &mut Writer<'_>, text: &str) -> fmt::Result {
    json(out, |s| s.serialize_str(text))
}

/// Writes one value with `serde_json`'s serializer (its escaping, its numbers) into the line.
fn json(
    out: &mut Writer<'_>,
    write: impl FnOnce(&mut serde_json::Serializer<Line<'_, '_>>) -> serde_json::Result<()>,
) -> fmt::Result {
    write(&mut serde_json::Serializer::new(Line(out))).map_err(|_| fmt::Error)
}

/// The line as `io::Write`, which `serde_json` writes to: it writes whole UTF-8 pieces (the
/// text between escapes, and escapes), each a `str` again.
struct Line<'a, 'w>(&'a mut Writer<'w>);

impl io::Write for Line<'_, '_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let text = std::str::from_utf8(bytes).map_err(io::Error::other)?;
        self.0.write_str(text).map_err(io::Error::other)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
