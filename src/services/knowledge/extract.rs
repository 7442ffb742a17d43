//! Text from uploaded documents. Plain text is decoded here; every other format (Markdown,
//! HTML, PDF) is read by a child process of this binary (`xagent extract-text`) with a
//! time limit, an output cap and a memory limit, because PDF parsers panic, loop and eat
//! memory on real-world files: such a document then fails on its own, the server stays.
//!
//! The child's protocol: the document's bytes on standard input, `--type` its content
//! type (and `--filename` its name); the text on standard output with exit status 0, or
//! one of the `EXIT_*` statuses with a one-line reason on standard error.
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most text one document may give (more is refused, not cut).
pub const MAX_TEXT_BYTES: usize = 16 * 1024 * 1024;
/// The address space the child may use, in MiB (Linux: RLIMIT_AS).
pub const MEMORY_LIMIT_MIB: u64 = 2048;
/// How much of the child's standard error is kept.
const MAX_STDERR_BYTES: usize = 64 * 1024;

/// The child found no text.
const EXIT_EMPTY: u8 = 3;
/// The child does not read this type.
const EXIT_UNSUPPORTED: u8 = 4;
/// The document is malformed; standard error says how.
const EXIT_UNREADABLE: u8 = 5;
/// The child could not read its input or write its output.
const EXIT_IO: u8 = 6;
/// The reader panicked on the document.
const EXIT_PANICKED: u8 = 7;
/// The child reached its memory limit where it could tell (elsewhere the allocator
/// aborts the process).
const EXIT_OUT_OF_MEMORY: u8 = 8;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("documents of type {content_type} cannot be read")]
    Unsupported { content_type: String },
    #[error("no text found in the document")]
    Empty,
    #[error("the {what} could not be read: {reason}")]
    Unreadable { what: &'static str, reason: String },
    #[error("the {what} could not be read: the reader failed on its content")]
    Crashed { what: &'static str },
    #[error("reading the document took longer than {}", duration_text(*.0))]
    TimedOut(Duration),
    #[error("reading the document needed more than {MEMORY_LIMIT_MIB} MiB of memory")]
    OutOfMemory,
    #[error("the document's text is larger than {} MiB", MAX_TEXT_BYTES >> 20)]
    TooLarge,
    #[error("the document reader could not be started")]
    Start(#[source] std::io::Error),
}

fn duration_text(d: Duration) -> String {
    if d.as_secs() >= 1 && d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The formats documents are read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text, CSV, JSON: the text as it is.
    Text,
    Markdown,
    Html,
    Pdf,
}

impl Format {
    /// The format of a document by its (sniffed) content type, the file's name deciding
    /// between the text formats; `None` for types without text to read (images, Office).
    pub fn of(content_type: &str, filename: &str) -> Option<Format> {
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let ext = filename
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        match ct.as_str() {
            "application/pdf" => Some(Format::Pdf),
            "text/markdown" | "text/x-markdown" => Some(Format::Markdown),
            "text/html" | "application/xhtml+xml" => Some(Format::Html),
            "application/json" => Some(Format::Text),
            t if t.starts_with("text/") => Some(match ext.as_str() {
                "md" | "markdown" => Format::Markdown,
                "html" | "htm" | "xhtml" => Format::Html,
                _ => Format::Text,
            }),
            _ => None,
        }
    }

    /// What a reason calls a document of this format.
    fn noun(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "Markdown document",
            Format::Html => "HTML document",
            Format::Pdf => "PDF",
        }
    }
}

/// Where and how long documents are read.
#[derive(Debug, Clone)]
pub struct Extractor {
    /// The executable whose `extract-text` command reads documents (this one in
    /// production, the built binary in tests).
    pub exe: PathBuf,
    /// How long one document may take.
    pub timeout: Duration,
}

impl Extractor {
    /// The text of a document of `content_type` named `filename`.
    pub async fn extract(
        &self,
        bytes: Vec<u8>,
        content_type: &str,
        filename: &str,
    ) -> Result<String, ExtractError> {
        let format = Format::of(content_type, filename).ok_or_else(|| unsupported(content_type))?;
        match format {
            // Decoding text cannot crash or hang: no process for it, a blocking thread
            // for its megabytes.
            Format::Text => tokio::task::spawn_blocking(move || convert(&bytes, format))
                .await
                .unwrap_or(Err(ExtractError::Crashed { what: "text" })),
            _ => self.in_child(bytes, format, content_type, filename).await,
        }
    }

    /// Runs `exe extract-text` on `bytes`: killed when the time is up (or when this
    /// future is dropped), its output cut off past [`MAX_TEXT_BYTES`].
    async fn in_child(
        &self,
        bytes: Vec<u8>,
        format: Format,
        content_type: &str,
        filename: &str,
    ) -> Result<String, ExtractError> {
        let mut child = tokio::process::Command::new(&self.exe)
            .arg("extract-text")
            .arg("--type")
            .arg(content_type)
            .arg("--filename")
            .arg(filename)
            .arg("--memory-limit-mib")
            .arg(MEMORY_LIMIT_MIB.to_string())
            // The reader of untrusted files gets none of the server's secrets.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_BACKTRACE", "0")
            // mimalloc reserves 1 GiB of address space at start, before the child limits
            // its own: a smaller reserve (in KiB) keeps the limit meaningful.
            .env("MIMALLOC_ARENA_RESERVE", "65536")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                tracing::error!(exe = %self.exe.display(), error = %e, "cannot start the document reader");
                ExtractError::Start(e)
            })?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let talk = async {
            let write = async move {
                if let Some(mut input) = stdin {
                    // A child that stops reading early says why on its own.
                    let _ = input.write_all(&bytes).await;
                }
            };
            // The pipes are dropped as soon as enough was read: a child writing on gets
            // an error and ends.
            let read_out = async move {
                let mut out = Vec::new();
                if let Some(s) = stdout {
                    let _ = s
                        .take(MAX_TEXT_BYTES as u64 + 1)
                        .read_to_end(&mut out)
                        .await;
                }
                out
            };
            let read_err = async move {
                let mut err = Vec::new();
                if let Some(s) = stderr {
                    let _ = s.take(MAX_STDERR_BYTES as u64).read_to_end(&mut err).await;
                }
                err
            };
            let ((), out, err) = tokio::join!(write, read_out, read_err);
            if out.len() > MAX_TEXT_BYTES {
                let _ = child.start_kill();
            }
            let status = child.wait().await;
            (out, err, status)
        };
        let Ok((out, err, status)) = tokio::time::timeout(self.timeout, talk).await else {
            let _ = child.kill().await;
            return Err(ExtractError::TimedOut(self.timeout));
        };
        if out.len() > MAX_TEXT_BYTES {
            return Err(ExtractError::TooLarge);
        }
        let status = status.map_err(ExtractError::Start)?;
        let err = String::from_utf8_lossy(&err);
        let what = format.noun();
        match status.code() {
            Some(0) => {
                let text = String::from_utf8_lossy(&out).trim().to_string();
                if text.is_empty() {
                    Err(ExtractError::Empty)
                } else {
                    Ok(text)
                }
            }
            Some(c) if c == i32::from(EXIT_EMPTY) => Err(ExtractError::Empty),
            Some(c) if c == i32::from(EXIT_UNSUPPORTED) => Err(unsupported(content_type)),
            Some(c) if c == i32::from(EXIT_UNREADABLE) => Err(ExtractError::Unreadable {
                what,
                reason: one_line(&err),
            }),
            Some(c) if c == i32::from(EXIT_OUT_OF_MEMORY) => Err(ExtractError::OutOfMemory),
            _ => {
                tracing::warn!(%status, stderr = %tail(&err), content_type, "the document reader stopped");
                if err.contains("memory allocation of") {
                    Err(ExtractError::OutOfMemory)
                } else {
                    Err(ExtractError::Crashed { what })
                }
            }
        }
    }
}

fn unsupported(content_type: &str) -> ExtractError {
    ExtractError::Unsupported {
        content_type: content_type.into(),
    }
}

/// The first line of a child's reason, short enough for a status line.
fn one_line(s: &str) -> String {
    let line = s.lines().map(str::trim).find(|l| !l.is_empty());
    let line = line.unwrap_or("its content is malformed");
    let mut out: String = line.chars().filter(|c| !c.is_control()).take(200).collect();
    if line.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// The end of a child's standard error, for the log.
fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(2048);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].trim()
}

/// `xagent extract-text`: the child's side of the protocol. Limits its own address space
/// first, then reads standard input and writes the text to standard output.
pub fn run_child(content_type: &str, filename: &str, memory_limit_mib: u64) -> ExitCode {
    // One short line instead of the default report with a location.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("the reader panicked: {}", one_line(&msg));
    }));
    #[cfg(unix)]
    if memory_limit_mib > 0 {
        let bytes = memory_limit_mib.saturating_mul(1024 * 1024);
        if let Err(e) = rlimit::setrlimit(rlimit::Resource::AS, bytes, bytes) {
            eprintln!("cannot limit memory: {e}");
        }
    }
    #[cfg(not(unix))]
    let _ = memory_limit_mib;
    let Some(format) = Format::of(content_type, filename) else {
        eprintln!("documents of type {content_type} cannot be read");
        return ExitCode::from(EXIT_UNSUPPORTED);
    };
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut input) {
        eprintln!("cannot read standard input: {e}");
        return ExitCode::from(if e.kind() == std::io::ErrorKind::OutOfMemory {
            EXIT_OUT_OF_MEMORY
        } else {
            EXIT_IO
        });
    }
    let converted = std::panic::catch_unwind(|| convert(&input, format));
    match converted {
        Ok(Ok(text)) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(EXIT_IO),
            }
        }
        Ok(Err(ExtractError::Empty)) => ExitCode::from(EXIT_EMPTY),
        Ok(Err(ExtractError::Unsupported { .. })) => ExitCode::from(EXIT_UNSUPPORTED),
        Ok(Err(ExtractError::Unreadable { reason, .. })) => {
            eprintln!("{reason}");
            ExitCode::from(EXIT_UNREADABLE)
        }
        Ok(Err(e)) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_UNREADABLE)
        }
        Err(_) => ExitCode::from(EXIT_PANICKED),
    }
}

/// Reads a document in this process (the child does this; plain text is read so in the
/// server too).
pub fn convert(bytes: &[u8], format: Format) -> Result<String, ExtractError> {
    let text = match format {
        Format::Text => tidy(&decode_text(bytes)),
        Format::Markdown => markdown_to_text(&decode_text(bytes)),
        Format::Html => html_to_text(&decode_text(bytes)),
        Format::Pdf => tidy(&pdf_to_text(bytes)?),
    };
    if text.is_empty() {
        Err(ExtractError::Empty)
    } else {
        Ok(text)
    }
}

/// Bytes as text: UTF-8 (invalid sequences replaced), or UTF-16 when a byte-order mark
/// says so; NUL characters are dropped.
pub fn decode_text(bytes: &[u8]) -> String {
    let utf16 = |be: bool| {
        let units = bytes[2..].chunks(2).map(|c| match (c, be) {
            ([a, b], true) => u16::from_be_bytes([*a, *b]),
            ([a, b], false) => u16::from_le_bytes([*a, *b]),
            _ => 0xFFFD,
        });
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect::<String>()
    };
    let text = match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        [0xFF, 0xFE, ..] => utf16(false),
        [0xFE, 0xFF, ..] => utf16(true),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    };
    if text.contains('\0') {
        text.replace('\0', "")
    } else {
        text
    }
}

/// The text of bytes that are UTF-16 with a byte-order mark, whole and without NULs;
/// `None` for anything else.
pub fn utf16_text(bytes: &[u8]) -> Option<String> {
    let be = match bytes {
        [0xFF, 0xFE, ..] => false,
        [0xFE, 0xFF, ..] => true,
        _ => return None,
    };
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units = bytes[2..].chunks_exact(2).map(|c| {
        let pair = [c[0], c[1]];
        if be {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }
    });
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .ok()
        .filter(|t| !t.contains('\0'))
}

/// Text with trailing spaces cut from its lines, runs of blank lines made one, and no
/// whitespace at its start or end.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    match out.find(|c: char| !c.is_whitespace()) {
        Some(0) | None => out,
        Some(i) => out.split_off(i),
    }
}

/// Plain text being written block by block: paragraph breaks are blank lines.
#[derive(Default)]
struct Plain {
    out: String,
}

impl Plain {
    /// Text as it is (code, preformatted text).
    fn raw(&mut self, t: &str) {
        self.out.push_str(t);
    }

    /// Running text: whitespace runs become one space.
    fn inline(&mut self, t: &str) {
        let mut words = 0;
        for (i, word) in t.split_whitespace().enumerate() {
            if i > 0 || t.starts_with(char::is_whitespace) {
                self.space();
            }
            self.out.push_str(word);
            words += 1;
        }
        if t.ends_with(char::is_whitespace) || (words == 0 && !t.is_empty()) {
            self.space();
        }
    }

    fn space(&mut self) {
        if !self.at_space() {
            self.out.push(' ');
        }
    }

    fn at_space(&self) -> bool {
        self.out.is_empty() || self.out.ends_with([' ', '\n'])
    }

    /// Separates two parts of a line (table cells).
    fn separator(&mut self) {
        self.trim_end();
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push_str(" | ");
        }
    }

    fn line_break(&mut self) {
        self.trim_end();
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    fn paragraph_break(&mut self) {
        self.trim_end();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push_str(if self.out.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            });
        }
    }

    fn trim_end(&mut self) {
        let keep = self.out.trim_end_matches([' ', '\t']).len();
        self.out.truncate(keep);
    }

    fn finish(self) -> String {
        tidy(&self.out)
    }
}

/// Markdown rendered to plain text: headings and paragraphs as blocks separated by blank
/// lines, list items and table rows on lines of their own, markup and inline HTML gone.
pub fn markdown_to_text(md: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    let mut out = Plain::default();
    let mut html_block: Option<String> = None;
    let mut in_metadata = false;
    let mut first_cell = false;
    for event in Parser::new_ext(md, options) {
        match event {
            Event::Start(Tag::MetadataBlock(_)) => in_metadata = true,
            Event::End(TagEnd::MetadataBlock(_)) => in_metadata = false,
            _ if in_metadata => {}
            Event::Start(Tag::HtmlBlock) => html_block = Some(String::new()),
            Event::End(TagEnd::HtmlBlock) => {
                if let Some(html) = html_block.take() {
                    out.paragraph_break();
                    out.raw(&html_to_text(&html));
                    out.paragraph_break();
                }
            }
            Event::Html(h) => {
                if let Some(b) = html_block.as_mut() {
                    b.push_str(&h);
                }
            }
            Event::Start(Tag::TableRow | Tag::TableHead) => first_cell = true,
            Event::Start(Tag::TableCell) => {
                if !first_cell {
                    out.separator();
                }
                first_cell = false;
            }
            Event::Start(
                Tag::Paragraph
                | Tag::Heading { .. }
                | Tag::BlockQuote(_)
                | Tag::CodeBlock(_)
                | Tag::List(_)
                | Tag::Table(_)
                | Tag::FootnoteDefinition(_),
            )
            | Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::BlockQuote(_)
                | TagEnd::CodeBlock
                | TagEnd::List(_)
                | TagEnd::Table
                | TagEnd::FootnoteDefinition,
            )
            | Event::Rule => out.paragraph_break(),
            Event::Start(Tag::Item)
            | Event::End(TagEnd::Item | TagEnd::TableRow | TagEnd::TableHead) => {
                out.line_break();
            }
            Event::Text(t) => out.raw(&t),
            Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => out.raw(&t),
            Event::SoftBreak => out.raw(" "),
            Event::HardBreak => out.line_break(),
            Event::InlineHtml(_) | Event::FootnoteReference(_) | Event::TaskListMarker(_) => {}
            Event::Start(_) | Event::End(_) => {}
        }
    }
    out.finish()
}

/// Elements whose content is no text to read, tokenized as raw text up to their end tag.
const RAW_SKIPPED: &[&str] = &[
    "script", "style", "title", "noscript", "iframe", "noembed", "noframes", "xmp",
];

/// Elements whose content (markup included) is no text to read.
const SKIPPED: &[&str] = &["template", "svg", "math", "canvas"];

/// What a `<head>` holds; any other start tag ends it, as in a browser.
const IN_HEAD: &[&str] = &[
    "html", "head", "meta", "link", "base", "title", "style", "script", "noscript", "template",
];

/// Elements that stand as blocks of their own: a paragraph break before and after.
const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "center",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hgroup",
    "hr",
    "legend",
    "main",
    "menu",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "ul",
];

/// Elements that take a line of their own.
const LINES: &[&str] = &["li", "dt", "dd", "tr", "option"];

/// The readable text of an HTML document: no head, scripts or styles; block elements
/// separated by blank lines, list items and table rows on lines of their own. Read with
/// html5ever's tokenizer, without building a tree: time and memory stay linear however
/// deep the nesting.
pub fn html_to_text(html: &str) -> String {
    use html5ever::tendril::StrTendril;
    use html5ever::tokenizer::{BufferQueue, Tokenizer, TokenizerOpts};
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let tokenizer = Tokenizer::new(HtmlText::default(), TokenizerOpts::default());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.0.take().out.finish()
}

/// The token sink writing an HTML document's text.
#[derive(Default)]
struct HtmlText(std::cell::RefCell<HtmlState>);

#[derive(Default)]
struct HtmlState {
    out: Plain,
    /// Inside `<head>`.
    in_head: bool,
    /// Inside a raw-text element being left out, by name.
    raw: Option<String>,
    /// Inside a left-out element, by name, with its nesting.
    skip: Option<(String, usize)>,
    /// Depth of `<pre>` (whitespace kept).
    pre: usize,
}

impl html5ever::tokenizer::TokenSink for HtmlText {
    type Handle = ();

    fn process_token(
        &self,
        token: html5ever::tokenizer::Token,
        _line: u64,
    ) -> html5ever::tokenizer::TokenSinkResult<()> {
        use html5ever::tokenizer::{Token, TokenSinkResult};
        let mut state = self.0.borrow_mut();
        match token {
            Token::TagToken(tag) => return state.tag(&tag),
            Token::CharacterTokens(t) => state.text(&t),
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

impl HtmlState {
    fn tag(
        &mut self,
        tag: &html5ever::tokenizer::Tag,
    ) -> html5ever::tokenizer::TokenSinkResult<()> {
        use html5ever::tokenizer::states::RawKind;
        use html5ever::tokenizer::{TagKind, TokenSinkResult};
        let name: &str = &tag.name;
        let start = tag.kind == TagKind::StartTag;
        if let Some(raw) = &self.raw {
            if !start && name == raw {
                self.raw = None;
            }
            return TokenSinkResult::Continue;
        }
        if let Some((skipped, depth)) = &mut self.skip {
            if name == skipped && !tag.self_closing {
                if start {
                    *depth += 1;
                } else {
                    *depth -= 1;
                }
            }
            if *depth == 0 {
                self.skip = None;
            }
            return TokenSinkResult::Continue;
        }
        if !start {
            if name == "head" {
                self.in_head = false;
            } else if BLOCKS.contains(&name) {
                if name == "pre" {
                    self.pre = self.pre.saturating_sub(1);
                }
                self.out.paragraph_break();
            } else if LINES.contains(&name) {
                self.out.line_break();
            }
            return TokenSinkResult::Continue;
        }
        if name == "head" {
            self.in_head = true;
        } else if !IN_HEAD.contains(&name) {
            self.in_head = false;
        }
        if RAW_SKIPPED.contains(&name) {
            self.raw = Some(name.to_string());
            return TokenSinkResult::RawData(match name {
                "script" => RawKind::ScriptData,
                "title" => RawKind::Rcdata,
                _ => RawKind::Rawtext,
            });
        }
        if name == "textarea" {
            return TokenSinkResult::RawData(RawKind::Rcdata);
        }
        if SKIPPED.contains(&name) {
            if !tag.self_closing {
                self.skip = Some((name.to_string(), 1));
            }
        } else if BLOCKS.contains(&name) {
            self.out.paragraph_break();
            if name == "pre" {
                self.pre += 1;
            }
        } else if LINES.contains(&name) || name == "br" {
            self.out.line_break();
        } else if matches!(name, "td" | "th") {
            self.out.separator();
        } else if name == "img"
            && let Some(alt) = tag.attrs.iter().find(|a| &*a.name.local == "alt")
        {
            self.out.inline(&alt.value);
        }
        TokenSinkResult::Continue
    }

    fn text(&mut self, t: &str) {
        if self.raw.is_some() || self.skip.is_some() {
            return;
        }
        if self.in_head {
            if t.trim().is_empty() {
                return;
            }
            // Text ends the head, as in a browser.
            self.in_head = false;
        }
        if self.pre > 0 {
            self.out.raw(t);
        } else {
            self.out.inline(t);
        }
    }
}

/// The text of a PDF (pdf-extract); its errors as one-line reasons.
fn pdf_to_text(bytes: &[u8]) -> Result<String, ExtractError> {
    pdf_extract::extract_text_from_mem(bytes).map_err(|e| ExtractError::Unreadable {
        what: Format::Pdf.noun(),
        reason: one_line(pdf_reason(&e).as_str()),
    })
}

/// pdf-extract's message, without its "PDF error: " prefix (the reason says PDF).
fn pdf_reason(e: &pdf_extract::OutputError) -> String {
    match e {
        pdf_extract::OutputError::PdfError(e) => e.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_content_type_and_for_text_the_file_name() {
        assert_eq!(Format::of("application/pdf", "A.pdf"), Some(Format::Pdf));
        assert_eq!(Format::of("text/markdown", "notes"), Some(Format::Markdown));
        assert_eq!(
            Format::of("text/plain", "README.MD"),
            Some(Format::Markdown)
        );
        assert_eq!(
            Format::of("text/html; charset=utf-8", "x"),
            Some(Format::Html)
        );
        assert_eq!(Format::of("text/plain", "Page.htm"), Some(Format::Html));
        assert_eq!(Format::of("text/plain", "A.txt"), Some(Format::Text));
        assert_eq!(Format::of("text/csv", "A.csv"), Some(Format::Text));
        assert_eq!(Format::of("application/json", "A.json"), Some(Format::Text));
        assert_eq!(Format::of("image/png", "A.md"), None);
        assert_eq!(
            Format::of(
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "A.docx"
            ),
            None
        );
    }

    #[test]
    fn text_is_decoded_leniently_and_utf16_by_its_byte_order_mark() {
        assert_eq!(decode_text(b"caf\xc3\xa9 \xff ok"), "café \u{FFFD} ok");
        assert_eq!(decode_text(b"\xef\xbb\xbfhi"), "hi");
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("Grüße".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(decode_text(&le), "Grüße");
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("Grüße".encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        assert_eq!(decode_text(&be), "Grüße");
        assert_eq!(utf16_text(&le).as_deref(), Some("Grüße"));
        assert_eq!(utf16_text(&be).as_deref(), Some("Grüße"));
        assert_eq!(utf16_text(b"plain"), None);
        // Odd lengths, lone surrogates and NULs are no UTF-16 text.
        assert_eq!(utf16_text(&le[..le.len() - 1]), None);
        assert_eq!(utf16_text(&[0xFF, 0xFE, 0x00, 0xD8]), None);
        assert_eq!(utf16_text(&[0xFF, 0xFE, 0x00, 0x00]), None);
        assert_eq!(decode_text(b"a\0b"), "ab");
    }

    #[test]
    fn plain_text_keeps_its_lines_and_loses_blank_runs() {
        let t = convert(b"  one  \ntwo\n\n\n\nthree\n\n", Format::Text).unwrap_or_default();
        assert_eq!(t, "one\ntwo\n\nthree");
        assert!(matches!(
            convert(b" \n\t\n", Format::Text),
            Err(ExtractError::Empty)
        ));
    }

    #[test]
    fn markdown_becomes_plain_text_with_blocks_as_paragraphs() {
        let md = "---\ntitle: Front matter\n---\n\n# The *Title*\n\nSome **strong** text\nand a [link](http://example.com) with `code`.\n\n## Second\n\n- first item\n- second item\n\n> quoted words\n\n```rust\nfn main() {}\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n<div class=\"note\">inside <b>html</b></div>\n\nEnd<br>line ![alt words](x.png)\n";
        let t = markdown_to_text(md);
        assert_eq!(
            t,
            "The Title\n\nSome strong text and a link with code.\n\nSecond\n\nfirst item\nsecond item\n\nquoted words\n\nfn main() {}\n\na | b\n1 | 2\n\ninside html\n\nEndline alt words"
        );
        for markup in ["#", "**", "](", "`", "<div", "---", "Front matter"] {
            assert!(!t.contains(markup), "{markup} left in {t:?}");
        }
    }

    #[test]
    fn html_loses_head_scripts_and_styles_and_keeps_blocks_apart() {
        let html = r#"<!doctype html>
<html><head><title>Page title</title><style>body { color: red }</style>
<script>var secret = "tracking";</script></head>
<body>
  <nav><a href="/">Home</a></nav>
  <h1>Main   heading</h1>
  <p>First <b>bold</b>
     paragraph.</p><p>Second paragraph<br>on two lines.</p>
  <script type="text/javascript">document.write("injected")</script>
  <noscript>Enable JavaScript</noscript>
  <ul><li>alpha</li><li>beta</li></ul>
  <table><tr><th>k</th><th>v</th></tr><tr><td>1</td><td>2</td></tr></table>
  <pre>  keep
    this</pre>
  <div>Tail <img src="X.png" alt="a picture"> text &amp; more</div>
</body></html>"#;
        let t = html_to_text(html);
        assert_eq!(
            t,
            "Home\n\nMain heading\n\nFirst bold paragraph.\n\nSecond paragraph\non two lines.\n\nalpha\nbeta\n\nk | v\n1 | 2\n\n  keep\n    this\n\nTail a picture text & more"
        );
        for gone in [
            "Page title",
            "color",
            "secret",
            "injected",
            "JavaScript",
            "<",
        ] {
            assert!(!t.contains(gone), "{gone} left in {t:?}");
        }
    }

    #[test]
    fn html_without_its_closing_tags_is_read_as_a_browser_shows_it() {
        // No </head>: the first element of the body ends it.
        assert_eq!(
            html_to_text("<html><head><title>T</title><meta charset=utf-8><p>Shown"),
            "Shown"
        );
        // Text where the head was ends it too.
        assert_eq!(
            html_to_text("<head><title>T</title>Loose text"),
            "Loose text"
        );
        // A script's text is its own, whatever it looks like.
        assert_eq!(
            html_to_text("<p>a</p><script>if (x < 1) { s = '</div><p>no'; }</script><p>b</p>"),
            "a\n\nb"
        );
        assert_eq!(
            html_to_text(
                "<p>x<svg><g><text>drawn</text></g></svg>y<textarea>typed &lt;here&gt;</textarea></p>"
            ),
            "xytyped <here>"
        );
        assert_eq!(
            html_to_text("<p>fish &amp; chips&nbsp;&#33;</p>"),
            "fish & chips !"
        );
    }

    #[test]
    fn deeply_nested_html_is_read_in_linear_time() {
        let html = format!(
            "{}deep{}",
            "<div>".repeat(100_000),
            "</div>".repeat(100_000)
        );
        assert_eq!(html_to_text(&html), "deep");
    }

    #[test]
    fn a_malformed_pdf_is_unreadable_with_a_one_line_reason() {
        let err = convert(b"%PDF-1.4\n1 0 obj\n<< /Type /Cat", Format::Pdf);
        let Err(ExtractError::Unreadable { what, reason }) = err else {
            unreachable!("{err:?}");
        };
        assert_eq!(what, "PDF");
        assert!(!reason.contains('\n') && !reason.is_empty() && reason.len() < 250);
        assert!(!reason.starts_with("PDF error"));
    }

    #[test]
    fn reasons_read_as_sentences() {
        assert_eq!(
            ExtractError::TimedOut(Duration::from_secs(30)).to_string(),
            "reading the document took longer than 30 s"
        );
        assert_eq!(
            ExtractError::TimedOut(Duration::from_millis(300)).to_string(),
            "reading the document took longer than 300 ms"
        );
        assert_eq!(
            unsupported("image/png").to_string(),
            "documents of type image/png cannot be read"
        );
        assert_eq!(
            ExtractError::Crashed { what: "PDF" }.to_string(),
            "the PDF could not be read: the reader failed on its content"
        );
        assert_eq!(one_line("\n  first line\nsecond"), "first line");
        assert_eq!(one_line(""), "its content is malformed");
        assert!(one_line(&"x".repeat(500)).chars().count() <= 201);
    }

    /// An executable shell script standing in for the reader.
    fn script(dir: &std::path::Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("Reader.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap_or_default();
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
        path
    }

    /// Runs `extract` on a script; a spawn that races another test's fork of the freshly
    /// written file ("text file busy") is tried again.
    async fn run(exe: PathBuf, timeout: Duration, ct: &str) -> Result<String, ExtractError> {
        let x = Extractor { exe, timeout };
        for _ in 0..20 {
            match x.extract(b"input bytes".to_vec(), ct, "doc").await {
                Err(ExtractError::Start(e)) if e.raw_os_error() == Some(26) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
        x.extract(b"input bytes".to_vec(), ct, "doc").await
    }

    #[tokio::test]
    async fn a_reader_that_takes_too_long_is_killed_and_the_document_fails() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let pid = dir.path().join("pid");
        let exe = script(
            dir.path(),
            &format!("echo $$ > {}\nexec sleep 30", pid.display()),
        );
        let started = std::time::Instant::now();
        let got = run(exe, Duration::from_millis(500), "application/pdf").await;
        assert!(matches!(got, Err(ExtractError::TimedOut(_))), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(
            got.err().map(|e| e.to_string()).unwrap_or_default(),
            "reading the document took longer than 500 ms"
        );
        let pid = std::fs::read_to_string(&pid).unwrap_or_default();
        assert!(!pid.trim().is_empty());
        assert!(
            !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "the reader {pid} is still running"
        );
    }

    #[tokio::test]
    async fn the_reader_gets_the_bytes_and_its_output_is_the_text() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let args = dir.path().join("args");
        let exe = script(
            dir.path(),
            &format!(
                "echo \"$@\" > {}\necho \"secret=$XAGENT_MASTER_KEY\"\ncat",
                args.display()
            ),
        );
        let got = run(exe, Duration::from_secs(10), "text/html").await;
        assert_eq!(got.unwrap_or_default(), "secret=\ninput bytes");
        assert_eq!(
            std::fs::read_to_string(&args).unwrap_or_default().trim(),
            format!(
                "extract-text --type text/html --filename doc --memory-limit-mib {MEMORY_LIMIT_MIB}"
            )
        );
    }

    #[tokio::test]
    async fn a_crashing_reader_fails_the_document_with_a_reason() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let exe = script(dir.path(), "cat > /dev/null\nkill -SEGV $$");
        let got = run(exe, Duration::from_secs(10), "application/pdf").await;
        assert!(
            matches!(got, Err(ExtractError::Crashed { what: "PDF" })),
            "{got:?}"
        );

        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let exe = script(
            dir.path(),
            "echo 'memory allocation of 4096 bytes failed' >&2\nkill -ABRT $$",
        );
        let got = run(exe, Duration::from_secs(10), "application/pdf").await;
        assert!(matches!(got, Err(ExtractError::OutOfMemory)), "{got:?}");

        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let exe = script(
            dir.path(),
            "echo 'bad xref at 12\n  at some/place.rs:3' >&2\nexit 5",
        );
        let got = run(exe, Duration::from_secs(10), "application/pdf").await;
        assert_eq!(
            got.err().map(|e| e.to_string()).unwrap_or_default(),
            "the PDF could not be read: bad xref at 12"
        );

        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let exe = script(dir.path(), "exit 3");
        let got = run(exe, Duration::from_secs(10), "text/markdown").await;
        assert!(matches!(got, Err(ExtractError::Empty)), "{got:?}");

        let got = run(
            dir.path().join("missing"),
            Duration::from_secs(10),
            "text/html",
        )
        .await;
        assert!(matches!(got, Err(ExtractError::Start(_))), "{got:?}");
    }

    #[tokio::test]
    async fn a_reader_that_floods_its_output_is_cut_off() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let exe = script(
            dir.path(),
            &format!(
                "head -c {} /dev/zero | tr '\\0' a",
                MAX_TEXT_BYTES + 1024 * 1024
            ),
        );
        let got = run(exe, Duration::from_secs(30), "application/pdf").await;
        assert!(matches!(got, Err(ExtractError::TooLarge)), "{got:?}");
    }

    #[tokio::test]
    async fn plain_text_is_read_without_a_process_and_other_types_are_refused() {
        let x = Extractor {
            exe: PathBuf::from("/nonexistent/reader"),
            timeout: Duration::from_secs(1),
        };
        let got = x.extract(b"hello\n".to_vec(), "text/plain", "A.txt").await;
        assert_eq!(got.unwrap_or_default(), "hello");
        let got = x
            .extract(b"{\"a\": 1}".to_vec(), "application/json", "A.json")
            .await;
        assert_eq!(got.unwrap_or_default(), "{\"a\": 1}");
        let got = x.extract(vec![0x89, b'P'], "image/png", "A.png").await;
        assert_eq!(
            got.err().map(|e| e.to_string()).unwrap_or_default(),
            "documents of type image/png cannot be read"
        );
    }
}
