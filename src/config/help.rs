//! `--help` and the usage line, laid out exactly as argparse's `HelpFormatter` does for
//! gunicorn's parser (widths from the terminal, wrapping with Python's `textwrap`).

use pyo3::prelude::*;

use super::defaults;
use super::spec::{Action, Setting};
use super::table::SETTINGS;

/// The usage line argparse prints before errors: `usage: PROG [OPTIONS] [APP_MODULE]`.
pub fn format_usage(prog: &str) -> String {
    format!("usage: {prog} [OPTIONS] [APP_MODULE]\n")
}

/// argparse's width: `shutil.get_terminal_size().columns - 2`.
fn width(py: Python<'_>) -> usize {
    let cols = py
        .import("shutil")
        .and_then(|m| m.getattr("get_terminal_size")?.call0())
        .and_then(|t| t.getattr("columns")?.extract::<i64>())
        .unwrap_or(80);
    usize::try_from(cols - 2).unwrap_or(0)
}

/// `textwrap.wrap(text, width)` after argparse's whitespace normalisation.
fn wrap(py: Python<'_>, text: &str, width: usize) -> Vec<String> {
    let normal = text.split_whitespace().collect::<Vec<_>>().join(" ");
    py.import("textwrap")
        .and_then(|m| m.getattr("wrap")?.call1((normal.as_str(), width)))
        .and_then(|l| l.extract::<Vec<String>>())
        .unwrap_or_else(|_| vec![normal])
}

/// The invocation column: `-w INT, --workers INT`, `--proxy-protocol [MODE]`, `--preload`.
fn invocation(s: &Setting) -> String {
    let takes_value = matches!(s.action, Action::Store | Action::Append);
    if !takes_value {
        return s.cli.join(", ");
    }
    let meta = s.meta.map_or_else(|| s.name.to_uppercase(), str::to_string);
    let arg = if s.optional_value.is_some() {
        format!("[{meta}]")
    } else {
        meta
    };
    s.cli
        .iter()
        .map(|f| format!("{f} {arg}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The full `--help` text for program name `prog`.
pub fn format_help(py: Python<'_>, prog: &str) -> String {
    let width = width(py);
    let indent = 2usize;
    let max_help_position = 24.min(width.saturating_sub(20).max(indent * 2));

    let mut items: Vec<(String, String)> = vec![
        (
            "-h, --help".into(),
            "show this help message and exit".into(),
        ),
        (
            "-v, --version".into(),
            "show program's version number and exit".into(),
        ),
    ];
    for i in super::cli::help_order() {
        let s = &SETTINGS[i];
        let default = defaults::help_default(py, s);
        items.push((invocation(s), format!("{} [{}]", s.short, default)));
    }
    let action_max = items
        .iter()
        .map(|(inv, _)| inv.chars().count() + indent)
        .max()
        .unwrap_or(0);
    let help_position = (action_max + 2).min(max_help_position);
    let help_width = width.saturating_sub(help_position).max(11);
    let action_width = help_position.saturating_sub(indent + 2);

    let mut out = format!("{}\noptions:\n", format_usage(prog));
    for (inv, text) in &items {
        let lines = wrap(py, text, help_width);
        let inv_len = inv.chars().count();
        if inv_len <= action_width {
            out.push_str(&format!("{:indent$}{inv:<action_width$}  ", ""));
        } else {
            out.push_str(&format!("{:indent$}{inv}\n{:help_position$}", "", ""));
        }
        for (n, line) in lines.iter().enumerate() {
            if n > 0 {
                out.push_str(&format!("{:help_position$}", ""));
            }
            out.push_str(line);
            out.push('\n');
        }
        if lines.is_empty() {
            out.push('\n');
        }
    }
    out
}
