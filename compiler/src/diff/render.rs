//! A [`TreeDiff`] for people (text, optionally coloured), for a pull request
//! (Markdown: the summary first, details folded) and for bots (JSON).

use std::fmt::Write;

use anstyle::{AnsiColor, Style};

use super::{FileDiff, Owner, Status, TreeDiff};

/// GitHub refuses comments over 65,536 characters; details stop short of it.
const MARKDOWN_BUDGET: usize = 60_000;

pub fn json(diff: &TreeDiff) -> String {
    let mut s = serde_json::to_string_pretty(diff).expect("a diff serialises");
    s.push('\n');
    s
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// One line: what changes, or that nothing does.
pub(crate) fn headline(diff: &TreeDiff) -> String {
    let s = &diff.summary;
    if !diff.has_changes() {
        return format!(
            "no changes: `{}` is what the estate compiles to",
            diff.against
        );
    }
    let mut parts = vec![format!(
        "{} ({} added, {} removed, {} changed)",
        plural(s.files.total(), "file"),
        s.files.added,
        s.files.removed,
        s.files.changed
    )];
    if s.resources.total() > 0 {
        parts.push(plural(s.resources.total(), "resource"));
    }
    if s.images > 0 {
        parts.push(plural(s.images, "image"));
    }
    if s.prune_risks > 0 {
        parts.push(plural(s.prune_risks, "prune risk"));
    }
    if s.unowned > 0 {
        parts.push(format!(
            "{} hand-edited or foreign",
            plural(s.unowned, "file")
        ));
    }
    if s.files.total() == 0 {
        parts = vec!["only keelson.lock".into()];
    }
    format!("{} against `{}`", parts.join(", "), diff.against)
}

fn owner_text(owner: Owner, status: Status) -> &'static str {
    match (owner, status) {
        (Owner::HandEdited, Status::Removed) => {
            "edited by hand since keelson wrote it, and the estate no longer generates it: compile refuses to remove it; delete it yourself, or compile with --force"
        }
        (Owner::HandEdited, _) => {
            "edited by hand since keelson wrote it: compile refuses to overwrite it; move the edit into the estate, or compile with --force to drop it"
        }
        (Owner::Foreign, _) => {
            "not written by keelson, and where keelson would write: compile refuses to overwrite it; move it away, or compile with --force"
        }
        (Owner::Keelson, _) => "",
    }
}

fn mark(s: Status) -> char {
    match s {
        Status::Added => 'A',
        Status::Removed => 'D',
        Status::Changed => 'M',
    }
}

fn sign(s: Status) -> char {
    match s {
        Status::Added => '+',
        Status::Removed => '-',
        Status::Changed => '~',
    }
}

fn value(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(none)")
}

struct Paint {
    on: bool,
}

impl Paint {
    fn paint(&self, style: Style, text: &str) -> String {
        if self.on {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }
    fn fg(&self, c: AnsiColor, text: &str) -> String {
        self.paint(Style::new().fg_color(Some(c.into())), text)
    }
    fn bold(&self, text: &str) -> String {
        self.paint(Style::new().bold(), text)
    }
    fn status(&self, s: Status, text: &str) -> String {
        self.fg(
            match s {
                Status::Added => AnsiColor::Green,
                Status::Removed => AnsiColor::Red,
                Status::Changed => AnsiColor::Yellow,
            },
            text,
        )
    }
}

/// Text for a terminal or a log. `color` adds ANSI styles; `patch` adds each
/// file's unified diff.
pub fn text(diff: &TreeDiff, color: bool, patch: bool) -> String {
    let p = Paint { on: color };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        p.bold(&format!("keelson diff: {}", headline(diff)))
    );
    if !diff.exists {
        let _ = writeln!(
            out,
            "`{}` does not exist yet: every file is new",
            diff.against
        );
    }
    if diff.interrupted {
        let _ = writeln!(
            out,
            "`{}` holds an interrupted compile; the next compile completes it before anything else",
            diff.against
        );
    }
    if !diff.prune_risks.is_empty() {
        let _ = writeln!(out, "\n{}", p.fg(AnsiColor::Red, &p.bold("prune risks")));
        for r in &diff.prune_risks {
            let _ = writeln!(
                out,
                "  {} Application {} is removed ({})",
                p.fg(AnsiColor::Red, "!"),
                r.who(),
                r.path
            );
            let _ = writeln!(out, "    {}", r.message);
        }
    }
    if !diff.images.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("images"));
        for i in &diff.images {
            let _ = writeln!(
                out,
                "  app {}, stage {}, image {}: {} → {}",
                i.app,
                i.stage,
                i.image,
                p.fg(AnsiColor::Red, value(&i.old)),
                p.fg(AnsiColor::Green, value(&i.new))
            );
            if !i.why.is_empty() {
                let _ = writeln!(out, "    why: {}", i.why);
            }
        }
    }
    if !diff.waiting.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("waiting (no Application yet)"));
        for w in &diff.waiting {
            let _ = writeln!(out, "  {} {}: {}", w.app, w.stage, w.why);
        }
    }
    if !diff.files.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("files"));
        for f in &diff.files {
            file_text(&mut out, &p, f, patch);
        }
    }
    if !diff.unowned.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            p.fg(
                AnsiColor::Magenta,
                &p.bold("files keelson does not own as they are")
            )
        );
        for f in &diff.unowned {
            file_text(&mut out, &p, f, patch);
        }
    }
    if diff.lock_changed {
        let _ = writeln!(out, "\nkeelson.lock changes");
    }
    if diff.summary.foreign_untouched > 0 {
        let _ = writeln!(
            out,
            "\n{} keelson does not own: left as they are",
            plural(diff.summary.foreign_untouched, "file")
        );
    }
    out
}

fn file_text(out: &mut String, p: &Paint, f: &FileDiff, patch: bool) {
    let _ = writeln!(
        out,
        "  {} {}",
        p.status(f.status, &mark(f.status).to_string()),
        f.path
    );
    let note = owner_text(f.owner, f.status);
    if !note.is_empty() {
        let _ = writeln!(out, "      {}", p.fg(AnsiColor::Magenta, note));
    }
    for r in &f.resources {
        let _ = writeln!(
            out,
            "      {} {}",
            p.status(r.status, &sign(r.status).to_string()),
            r.id
        );
        for c in &r.fields {
            let _ = writeln!(
                out,
                "          {}: {} → {}",
                c.path,
                p.fg(AnsiColor::Red, value(&c.old)),
                p.fg(AnsiColor::Green, value(&c.new))
            );
        }
    }
    if patch {
        for line in f.patch.lines() {
            let styled = if line.starts_with("+++") || line.starts_with("---") {
                p.bold(line)
            } else if line.starts_with('+') {
                p.fg(AnsiColor::Green, line)
            } else if line.starts_with('-') {
                p.fg(AnsiColor::Red, line)
            } else if line.starts_with("@@") {
                p.fg(AnsiColor::Cyan, line)
            } else {
                line.to_string()
            };
            let _ = writeln!(out, "      {styled}");
        }
    }
}

/// Inline code that survives backticks inside.
fn code(s: &str) -> String {
    let longest = longest_run(s, '`');
    let fence = "`".repeat(longest + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{s}{pad}{fence}")
}

fn longest_run(s: &str, c: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for ch in s.chars() {
        run = if ch == c { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// A table cell: pipes and line breaks would end the cell or the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Markdown for a pull-request comment: a headline and summary table, prune
/// risks and images in the open, every file's details folded.
pub fn markdown(diff: &TreeDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### keelson diff against {}\n", code(&diff.against));
    if !diff.has_changes() {
        let _ = writeln!(
            out,
            "No changes: the generated tree is what the estate compiles to."
        );
        return out;
    }
    if !diff.exists {
        let _ = writeln!(
            out,
            "{} does not exist yet: every file is new.\n",
            code(&diff.against)
        );
    }
    markdown_summary(&mut out, diff);
    markdown_prune_risks(&mut out, diff);
    markdown_images(&mut out, diff);
    markdown_lists(&mut out, diff);
    markdown_files(&mut out, diff);
    out
}

/// The counts table, and a line of what else to look at.
fn markdown_summary(out: &mut String, diff: &TreeDiff) {
    let s = &diff.summary;
    let _ = writeln!(out, "| | added | removed | changed |");
    let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
    let _ = writeln!(
        out,
        "| files | {} | {} | {} |",
        s.files.added, s.files.removed, s.files.changed
    );
    let _ = writeln!(
        out,
        "| resources | {} | {} | {} |",
        s.resources.added, s.resources.removed, s.resources.changed
    );
    let mut facts = Vec::new();
    if s.images > 0 {
        facts.push(format!("{} move", plural(s.images, "image")));
    }
    if s.prune_risks > 0 {
        facts.push(format!("**{}**", plural(s.prune_risks, "prune risk")));
    }
    if s.unowned > 0 {
        facts.push(format!(
            "{} hand-edited or foreign",
            plural(s.unowned, "file")
        ));
    }
    if diff.lock_changed {
        facts.push("`keelson.lock` changes".into());
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "\n{}.", facts.join(" · "));
    }
}

/// The prune risks, as a caution callout.
fn markdown_prune_risks(out: &mut String, diff: &TreeDiff) {
    if diff.prune_risks.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n> [!CAUTION]");
    let _ = writeln!(
        out,
        "> **Prune risk.** Removing an Application can delete live workloads.\n>"
    );
    for r in &diff.prune_risks {
        let _ = writeln!(
            out,
            "> - Application {} ({}): {}",
            code(&r.who()),
            code(&r.path),
            r.message
        );
    }
}

/// The images that move, one table row each.
fn markdown_images(out: &mut String, diff: &TreeDiff) {
    if diff.images.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n#### Images\n");
    let _ = writeln!(out, "| app | stage | image | from | to | why |");
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    for i in &diff.images {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&i.app),
            cell(&i.stage),
            cell(&i.image),
            i.old
                .as_deref()
                .map(|o| cell(&code(o)))
                .unwrap_or_else(|| "—".into()),
            i.new
                .as_deref()
                .map(|n| cell(&code(n)))
                .unwrap_or_else(|| "—".into()),
            cell(&i.why)
        );
    }
}

/// The stages that wait for a first rollout, and the files keelson does
/// not own as they are.
fn markdown_lists(out: &mut String, diff: &TreeDiff) {
    if !diff.waiting.is_empty() {
        let _ = writeln!(out, "\n#### Waiting for a first rollout\n");
        for w in &diff.waiting {
            let _ = writeln!(out, "- {} in {}: {}", code(&w.app), code(&w.stage), w.why);
        }
    }
    if !diff.unowned.is_empty() {
        let _ = writeln!(out, "\n#### Files keelson does not own as they are\n");
        for f in &diff.unowned {
            let _ = writeln!(
                out,
                "- {}: {}",
                code(&f.path),
                owner_text(f.owner, f.status)
            );
        }
    }
}

/// Every file's details, folded, while the comment stays under
/// `MARKDOWN_BUDGET`: a file's patch is dropped before the file is, and
/// the files left out are counted.
fn markdown_files(out: &mut String, diff: &TreeDiff) {
    let all: Vec<&FileDiff> = diff.unowned.iter().chain(&diff.files).collect();
    if all.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n#### Files\n");
    let mut omitted = 0;
    for f in all {
        let full = file_markdown(f, true);
        if out.len() + full.len() < MARKDOWN_BUDGET {
            out.push_str(&full);
            continue;
        }
        let short = file_markdown(f, false);
        if out.len() + short.len() < MARKDOWN_BUDGET {
            out.push_str(&short);
        } else {
            omitted += 1;
        }
    }
    if omitted > 0 {
        let _ = writeln!(
            out,
            "\n{} more not shown (the comment would be too long): run `keelson diff` for all of them.",
            plural(omitted, "file")
        );
    }
}

fn file_markdown(f: &FileDiff, with_patch: bool) -> String {
    let mut out = String::new();
    let what: Vec<String> = f.resources.iter().map(|r| r.id.to_string()).collect();
    let _ = writeln!(
        out,
        "<details><summary>{} <code>{}</code>{}</summary>\n",
        f.status.word(),
        html(&f.path),
        if what.is_empty() {
            String::new()
        } else {
            format!(": {}", html(&what.join(", ")))
        }
    );
    for r in &f.resources {
        let _ = writeln!(out, "- {} {}", r.status.word(), code(&r.id.to_string()));
        for c in &r.fields {
            let _ = writeln!(
                out,
                "  - {}: {} → {}",
                code(&c.path),
                c.old
                    .as_deref()
                    .map(code)
                    .unwrap_or_else(|| "(none)".into()),
                c.new
                    .as_deref()
                    .map(code)
                    .unwrap_or_else(|| "(none)".into())
            );
        }
    }
    if !f.resources.is_empty() {
        out.push('\n');
    }
    if with_patch {
        let fence = "`".repeat(longest_run(&f.patch, '`').max(2) + 1);
        let _ = writeln!(out, "{fence}diff\n{}{fence}\n", f.patch);
    }
    let _ = writeln!(out, "</details>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::{Counts, FileDiff, Summary};

    fn big_diff(files: usize) -> TreeDiff {
        let patch: String = (0..200).map(|i| format!("+line {i} ```\n")).collect();
        TreeDiff {
            against: "gitops".into(),
            exists: true,
            summary: Summary {
                files: Counts {
                    added: files,
                    ..Counts::default()
                },
                ..Summary::default()
            },
            files: (0..files)
                .map(|i| FileDiff {
                    path: format!("k8s/app-{i}/base/deployment.yaml"),
                    status: Status::Added,
                    owner: Owner::Keelson,
                    resources: Vec::new(),
                    patch: patch.clone(),
                })
                .collect(),
            ..TreeDiff::default()
        }
    }

    #[test]
    fn markdown_stays_under_the_comment_limit() {
        let md = markdown(&big_diff(500));
        assert!(md.len() < 65_536, "{} characters", md.len());
        assert!(md.contains("more not shown"), "{md}");
        // A patch holding a fence is wrapped in a longer one.
        assert!(md.contains("````diff"), "{md}");
    }

    #[test]
    fn inline_code_survives_backticks() {
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
