//! The PDF itself, with `printpdf`: a pure Rust PDF writer (no system library, no browser)
//! that embeds TrueType fonts with their Unicode mapping, so the text stays extractable
//! (`pdftotext`, screen readers, search). The fonts are DejaVu Sans (`fonts/`, with their
//! licence), built into the binary: rendering reads nothing from the machine, and names in
//! Latin, Greek or Cyrillic scripts print as written. (The 14 built-in PDF fonts need no
//! embedding, but `printpdf` 0.9 writes their text as UTF-8 under WinAnsi, which garbles
//! every character beyond ASCII.)
//!
//! `printpdf` 0.9 embeds a font whole (its subsetting is switched off): 1.4 MB a document.
//! So each font is first cut down to the characters the document uses, with `allsorts`
//! (which `printpdf` itself uses for fonts): a document is then some 30 KB.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use allsorts::binary::read::ReadScope;
use allsorts::font_data::FontData;
use allsorts::subset::{CmapTarget, SubsetProfile};
use chrono::{DateTime, Utc};
use printpdf::{FontId, Mm, Op, ParsedFont, PdfDocument, PdfFont, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt, TextItem};
use tidemark_events::quote::{ApprovalRecord, Decision};

use crate::Document;

const PAGE_WIDTH: f32 = 210.0;
const PAGE_HEIGHT: f32 = 297.0;
const LEFT: f32 = 20.0;
const TOP: f32 = 275.0;
/// Where text stops and the next page begins; the page number sits below.
const BOTTOM: f32 = 22.0;

static REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

/// The fonts, parsed once: their character maps say which glyphs a text needs.
fn fonts() -> &'static [(ParsedFont, &'static [u8]); 2] {
    static FONTS: OnceLock<[(ParsedFont, &'static [u8]); 2]> = OnceLock::new();
    FONTS.get_or_init(|| [REGULAR, BOLD].map(|bytes| (ParsedFont::from_bytes(bytes, 0, &mut Vec::new()).expect("the built-in fonts parse"), bytes)))
}

/// `font` with only the glyphs of `used` (and `.notdef`, which shows a missing character).
/// The whole font when cutting it fails, which it should not: a larger document, still right.
fn cut_down((font, bytes): &(ParsedFont, &[u8]), used: &BTreeSet<char>) -> ParsedFont {
    let mut glyphs: Vec<u16> = used.iter().filter_map(|c| font.lookup_glyph_index(*c as u32)).filter(|g| *g != 0).collect();
    glyphs.sort_unstable();
    glyphs.dedup();
    glyphs.insert(0, 0);
    let subset = ReadScope::new(bytes)
        .read::<FontData<'_>>()
        .map_err(|e| e.to_string())
        .and_then(|data| data.table_provider(0).map_err(|e| e.to_string()))
        .and_then(|provider| allsorts::subset::subset(&provider, &glyphs, &SubsetProfile::Minimal, CmapTarget::Unicode).map_err(|e| e.to_string()))
        .and_then(|cut| ParsedFont::from_bytes(&cut, 0, &mut Vec::new()).ok_or_else(|| "the cut-down font does not parse".to_string()));
    subset.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cutting a font down failed; the document embeds the whole font");
        font.clone()
    })
}

/// The document's PDF.
pub fn render(doc: &Document) -> Vec<u8> {
    let q = &doc.quote;
    let mut pages = Pages::new();
    pages.text(LEFT, &format!("Quote {} - revision {}", q.id, q.revision), Style::Title);
    pages.gap(2.0);
    pages.text(LEFT, &doc.opportunity_name, Style::Heading);
    let account = doc.customer.account.clone().unwrap_or_else(|| "(account not known yet)".into());
    pages.labelled("For", &account, Style::Body);
    if !doc.customer.people.is_empty() {
        let people: Vec<&str> = doc.customer.people.iter().map(|(_, name)| name.as_str()).collect();
        pages.labelled("Attention", &people.join(", "), Style::Body);
    }
    pages.labelled("Prepared by", &doc.owner_id, Style::Body);
    pages.labelled("Valid until", &q.valid_until.to_string(), Style::Body);
    pages.labelled("Approved", &moment(doc.approved_at), Style::Body);
    pages.gap(4.0);

    const COLUMNS: [f32; 5] = [LEFT, 98.0, 120.0, 145.0, 168.0];
    pages.row(&COLUMNS, &["Product", "Quantity", "Unit price", "Discount", "Net"], Style::Bold);
    for line in &q.lines {
        let net = tidemark_events::quote::totals(std::slice::from_ref(line)).net;
        let product = wrap(&line.product, 44);
        let first = product.first().cloned().unwrap_or_default();
        pages.row(
            &COLUMNS,
            &[&first, &line.quantity.normalize().to_string(), &line.unit_price.to_string(), &format!("{}%", line.discount_percent.normalize()), &net.to_string()],
            Style::Body,
        );
        for more in product.iter().skip(1) {
            pages.text(LEFT, more, Style::Body);
        }
    }
    pages.gap(3.0);
    let currency = q.currency.to_string();
    let t = &q.totals;
    pages.labelled("List price", &format!("{} {currency}", t.list), Style::Body);
    pages.labelled("Discount", &format!("{} {currency} ({}% of the list price)", t.discount, t.discount_percent), Style::Body);
    pages.labelled("Total", &format!("{} {currency}", t.net), Style::Bold);
    pages.gap(4.0);

    pages.text(LEFT, "Approval history", Style::Heading);
    if let (Some(by), Some(at)) = (&q.submitted_by, q.submitted_at) {
        pages.text(LEFT, &format!("Submitted by {by} on {}", moment(at)), Style::Body);
    }
    let decisions: Vec<&ApprovalRecord> = q.history.iter().filter(|r| r.revision == q.revision).collect();
    if decisions.is_empty() {
        pages.text(LEFT, "No approval was needed: the discount is within what the submitter may give.", Style::Body);
    }
    for r in decisions {
        let step = match &r.team {
            Some(team) => format!("{} of team {team}", r.approver.name()),
            None => r.approver.name().to_string(),
        };
        let verb = if r.decision == Decision::Approved { "approved" } else { "rejected" };
        let behalf = r.on_behalf_of.as_ref().map(|o| format!(" on behalf of {o}")).unwrap_or_default();
        pages.text(LEFT, &format!("Step {} ({step}): {verb} by {}{behalf} on {}", r.step, r.decided_by, moment(r.decided_at)), Style::Body);
        if let Some(comment) = &r.comment {
            for line in wrap(&format!("\"{comment}\""), 95) {
                pages.text(LEFT + 6.0, &line, Style::Small);
            }
        }
    }
    pages.gap(6.0);

    pages.text(LEFT, "Provenance", Style::Bold);
    pages.text(LEFT, &format!("Opportunity {}. Made from these events, and rendered by Tidemark {}:", doc.opportunity_id, doc.code_version), Style::Small);
    for e in &doc.events {
        let line = format!("v{} {} {} by {} at {} (code {})", e.aggregate_version, e.event_type, e.event_id, e.actor_id, moment(e.recorded_at), e.code_version);
        pages.text(LEFT, &line, Style::Small);
    }

    let mut pdf = PdfDocument::new(&format!("Quote {} revision {}", q.id, q.revision));
    let [regular, bold] = fonts();
    pdf.resources.fonts.map.insert(Pages::font(false), PdfFont::new(cut_down(regular, &pages.used)));
    pdf.resources.fonts.map.insert(Pages::font(true), PdfFont::new(cut_down(bold, &pages.used)));
    let pages = pages.finish();
    pdf.with_pages(pages).save(&PdfSaveOptions::default(), &mut Vec::new())
}

fn moment(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Splits text into lines of at most about `width` characters, at spaces where it can.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > width {
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(head);
            lines.push(String::new());
        }
        let last = lines.last_mut().expect("never empty");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > width {
            lines.push(word);
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(&word);
        }
    }
    lines.retain(|l| !l.is_empty());
    lines
}

#[derive(Clone, Copy)]
enum Style {
    Title,
    Heading,
    Bold,
    Body,
    Small,
}

impl Style {
    /// Whether bold, and the size in points.
    fn font(self) -> (bool, f32) {
        match self {
            Style::Title => (true, 15.0),
            Style::Heading => (true, 11.5),
            Style::Bold => (true, 9.5),
            Style::Body => (false, 9.5),
            Style::Small => (false, 7.0),
        }
    }

    /// The height of a line in this style, in mm.
    fn leading(self) -> f32 {
        self.font().1 * 0.3528 * 1.45
    }
}

/// Pages filled from the top, one line at a time.
struct Pages {
    done: Vec<Vec<Op>>,
    ops: Vec<Op>,
    y: f32,
    /// Every character shown: the fonts are cut down to these.
    used: BTreeSet<char>,
}

impl Pages {
    fn new() -> Pages {
        // The page numbers, written last, need these.
        Pages { done: Vec::new(), ops: Vec::new(), y: TOP, used: "page of 0123456789".chars().collect() }
    }

    /// The font's name in the document; the fonts are added once the text is known. (Not
    /// `F1`…`F14`: `printpdf` takes those for the built-in fonts.)
    fn font(bold: bool) -> FontId {
        FontId(if bold { "DejaVuSansBold" } else { "DejaVuSans" }.to_string())
    }

    fn advance(&mut self, by: f32) {
        if self.y - by < BOTTOM {
            self.done.push(std::mem::take(&mut self.ops));
            self.y = TOP;
        }
        self.y -= by;
    }

    fn put(&mut self, x: f32, text: &str, style: Style) {
        let (bold, size) = style.font();
        self.used.extend(text.chars());
        self.ops.extend([
            Op::StartTextSection,
            Op::SetFont { font: PdfFontHandle::External(Pages::font(bold)), size: Pt(size) },
            Op::SetTextCursor { pos: Point::new(Mm(x), Mm(self.y)) },
            Op::ShowText { items: vec![TextItem::Text(text.to_string())] },
            Op::EndTextSection,
        ]);
    }

    fn text(&mut self, x: f32, text: &str, style: Style) {
        self.advance(style.leading());
        self.put(x, text, style);
    }

    fn row(&mut self, columns: &[f32], cells: &[&str], style: Style) {
        self.advance(style.leading());
        for (x, cell) in columns.iter().zip(cells) {
            self.put(*x, cell, style);
        }
    }

    /// A bold label, and its value in `style` beside it.
    fn labelled(&mut self, label: &str, value: &str, style: Style) {
        self.advance(style.leading());
        self.put(LEFT, label, Style::Bold);
        self.put(LEFT + 30.0, value, style);
    }

    fn gap(&mut self, mm: f32) {
        self.advance(mm);
    }

    /// The pages, each numbered "page i of n".
    fn finish(mut self) -> Vec<PdfPage> {
        let mut done = std::mem::take(&mut self.done);
        done.push(std::mem::take(&mut self.ops));
        let count = done.len();
        done.into_iter()
            .enumerate()
            .map(|(i, mut ops)| {
                self.y = 12.0;
                self.put(PAGE_WIDTH - 45.0, &format!("page {} of {count}", i + 1), Style::Small);
                ops.append(&mut self.ops);
                PdfPage::new(Mm(PAGE_WIDTH), Mm(PAGE_HEIGHT), ops)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Document {
        use std::str::FromStr;
        let d = |s: &str| rust_decimal::Decimal::from_str(s).unwrap();
        let lines = vec![tidemark_events::quote::LineItem { product: "Fleet licence".into(), quantity: d("3"), unit_price: d("1000.00"), discount_percent: d("10") }; 60];
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Document {
            opportunity_id: uuid::Uuid::from_u128(1),
            opportunity_name: "Fleet renewal".into(),
            owner_id: "alice".into(),
            quote: tidemark_events::quote::Quote {
                id: uuid::Uuid::from_u128(7),
                revision: 2,
                currency: tidemark_events::Currency::try_from("EUR".to_string()).unwrap(),
                totals: tidemark_events::quote::totals(&lines),
                lines,
                valid_until: at.date_naive(),
                status: tidemark_events::quote::QuoteStatus::Approved,
                submitted_by: Some("alice".into()),
                submitted_at: Some(at),
                chain: Vec::new(),
                approved_steps: 0,
                waiting_since: None,
                history: Vec::new(),
                decline_reason: None,
            },
            approved_at: at,
            customer: crate::Customer { account: Some("Acme".into()), people: vec![(uuid::Uuid::from_u128(9), "Zoë Łęcka (CFO)".into())] },
            events: Vec::new(),
            code_version: "test".into(),
        }
    }

    #[test]
    fn a_document_embeds_only_the_glyphs_it_uses() {
        let pdf = render(&document());
        assert!(pdf.starts_with(b"%PDF-"));
        // With the whole fonts, it was 1.4 MB.
        assert!(pdf.len() < 150_000, "{} bytes", pdf.len());
    }

    #[test]
    fn a_long_quote_goes_on_over_pages() {
        let mut pages = Pages::new();
        for i in 0..200 {
            pages.text(LEFT, &format!("line {i}"), Style::Body);
        }
        let pages = pages.finish();
        assert_eq!(pages.len(), 4, "52 lines of body text a page");
    }

    #[test]
    fn wrapping_keeps_every_word_and_breaks_long_ones() {
        assert_eq!(wrap("one two three", 7), vec!["one two", "three"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert!(wrap("", 10).is_empty());
    }
}
