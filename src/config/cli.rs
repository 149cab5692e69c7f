//! The command line, parsed with the exact semantics of Python 3.11's `argparse` as gunicorn
//! configures it: unambiguous long prefixes, `--opt=value`, `-w3`, bundled short flags, `--`,
//! one `nargs='*'` positional, and argparse's error messages (usage line + `prog: error:`, exit 2).

use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use regex::Regex;

use super::help;
use super::spec::{Action, ArgType, Setting};
use super::table::SETTINGS;

/// What an option string stands for.
#[derive(Clone, Copy)]
enum Target {
    Help,
    Version,
    Setting(usize),
}

/// The parsed command line: like argparse's namespace, one slot per setting (index into
/// [`SETTINGS`]), `None` when the option was not given.
pub struct Namespace {
    pub values: Vec<Option<Py<PyAny>>>,
    /// The positional arguments (the first one is APP_MODULE).
    pub args: Vec<String>,
}

impl Namespace {
    /// The value given for setting `name`, if any.
    pub fn get(&self, name: &str) -> Option<&Py<PyAny>> {
        let i = SETTINGS.iter().position(|s| s.name == name)?;
        self.values[i].as_ref()
    }

    /// `(setting, value)` for every option given, in argparse's namespace order (help order).
    pub fn given(&self) -> Vec<(&'static Setting, &Py<PyAny>)> {
        let mut out: Vec<(&'static Setting, &Py<PyAny>)> = Vec::new();
        for i in help_order() {
            if let Some(v) = &self.values[i] {
                out.push((&SETTINGS[i], v));
            }
        }
        out
    }
}

/// Why parsing stopped early: argparse printed something and the process must exit.
#[derive(Debug, PartialEq, Eq)]
pub struct Exit(pub i32);

/// Indices of the settings that have command-line flags, in argparse's registration order.
pub fn help_order() -> Vec<usize> {
    let mut idx: Vec<usize> = (0..SETTINGS.len())
        .filter(|&i| SETTINGS[i].help_position.is_some())
        .collect();
    idx.sort_by_key(|&i| SETTINGS[i].help_position);
    idx
}

/// argparse's `_option_string_actions`, in insertion order.
fn option_strings() -> Vec<(&'static str, Target)> {
    let mut out = vec![
        ("-h", Target::Help),
        ("--help", Target::Help),
        ("-v", Target::Version),
        ("--version", Target::Version),
    ];
    for i in help_order() {
        for flag in SETTINGS[i].cli {
            out.push((flag, Target::Setting(i)));
        }
    }
    out
}

/// One classified option: argparse's `(action, option_string, explicit_arg)`.
struct OptTuple {
    target: Option<Target>,
    option_string: String,
    explicit: Option<String>,
}

/// A parse failure: argparse's `ArgumentError` or `parser.error` message.
struct ParseError(String);

struct Parser<'py> {
    py: Python<'py>,
    prog: &'py str,
    opts: Vec<(&'static str, Target)>,
}

fn lookup(opts: &[(&'static str, Target)], s: &str) -> Option<Target> {
    opts.iter().find(|(o, _)| *o == s).map(|(_, t)| *t)
}

/// `-w/--workers`, as argparse names an optional action in messages.
fn argument_name(t: Target) -> String {
    match t {
        Target::Help => "-h/--help".into(),
        Target::Version => "-v/--version".into(),
        Target::Setting(i) => SETTINGS[i].cli.join("/"),
    }
}

/// Python `repr()` of a string.
pub fn py_repr(py: Python<'_>, s: &str) -> String {
    PyString::new(py, s)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| format!("'{s}'"))
}

fn negative_number(s: &str) -> bool {
    thread_local! {
        static RE: Regex = Regex::new(r"^-\d+$|^-\d*\.\d+$").expect("valid regex");
    }
    RE.with(|re| re.is_match(s))
}

impl<'py> Parser<'py> {
    fn parse_optional(&self, arg: &str) -> Result<Option<OptTuple>, ParseError> {
        let mut chars = arg.chars();
        let Some(first) = chars.next() else {
            return Ok(None);
        };
        if first != '-' {
            return Ok(None);
        }
        if let Some(t) = lookup(&self.opts, arg) {
            return Ok(Some(OptTuple {
                target: Some(t),
                option_string: arg.into(),
                explicit: None,
            }));
        }
        if arg.chars().count() == 1 {
            return Ok(None);
        }
        if let Some((o, e)) = arg.split_once('=')
            && let Some(t) = lookup(&self.opts, o)
        {
            return Ok(Some(OptTuple {
                target: Some(t),
                option_string: o.into(),
                explicit: Some(e.into()),
            }));
        }
        let mut tuples = self.option_tuples(arg);
        if tuples.len() > 1 {
            let matches: Vec<&str> = tuples.iter().map(|t| t.option_string.as_str()).collect();
            return Err(ParseError(format!(
                "ambiguous option: {arg} could match {}",
                matches.join(", ")
            )));
        }
        if let Some(t) = tuples.pop() {
            return Ok(Some(t));
        }
        if negative_number(arg) || arg.contains(' ') {
            return Ok(None);
        }
        Ok(Some(OptTuple {
            target: None,
            option_string: arg.into(),
            explicit: None,
        }))
    }

    fn option_tuples(&self, arg: &str) -> Vec<OptTuple> {
        let mut result = Vec::new();
        let second = arg.chars().nth(1);
        if second == Some('-') {
            let (prefix, explicit) = match arg.split_once('=') {
                Some((p, e)) => (p, Some(e.to_string())),
                None => (arg, None),
            };
            for (o, t) in &self.opts {
                if o.starts_with(prefix) {
                    result.push(OptTuple {
                        target: Some(*t),
                        option_string: (*o).into(),
                        explicit: explicit.clone(),
                    });
                }
            }
        } else {
            let split = arg.char_indices().nth(2).map_or(arg.len(), |(i, _)| i);
            let (short, short_explicit) = arg.split_at(split);
            for (o, t) in &self.opts {
                if *o == short {
                    result.push(OptTuple {
                        target: Some(*t),
                        option_string: (*o).into(),
                        explicit: Some(short_explicit.into()),
                    });
                } else if o.starts_with(arg) {
                    result.push(OptTuple {
                        target: Some(*t),
                        option_string: (*o).into(),
                        explicit: None,
                    });
                }
            }
        }
        result
    }

    /// Converts one option value with the setting's `type`.
    fn convert(&self, t: Target, s: &Setting, raw: &str) -> Result<Py<PyAny>, ParseError> {
        let py = self.py;
        let (value, type_name) = match s.arg_type {
            ArgType::Str => return Ok(PyString::new(py, raw).into_any().unbind()),
            ArgType::Int => (py_int(py, raw, None), "int"),
            ArgType::AutoInt => (auto_int(py, raw), "auto_int"),
        };
        value.map_err(|_| {
            ParseError(format!(
                "argument {}: invalid {type_name} value: {}",
                argument_name(t),
                py_repr(py, raw)
            ))
        })
    }

    /// argparse's `take_action`. Returns `Err(Ok(exit))` for -h/-v.
    fn take_action(
        &self,
        ns: &mut Namespace,
        t: Target,
        mut args: Vec<String>,
    ) -> Result<(), Result<Exit, ParseError>> {
        let py = self.py;
        match t {
            Target::Help => {
                print!("{}", help::format_help(py, self.prog));
                Err(Ok(Exit(0)))
            }
            Target::Version => {
                let v = Python::version_str();
                println!(
                    "{} (version {}, compatible with gunicorn {}, Python {})",
                    self.prog,
                    crate::VERSION,
                    crate::GUNICORN_VERSION,
                    v.split_whitespace().next().unwrap_or(v)
                );
                Err(Ok(Exit(0)))
            }
            Target::Setting(i) => {
                let s = &SETTINGS[i];
                if let Some(pos) = args.iter().position(|a| a == "--") {
                    args.remove(pos);
                }
                let value: Py<PyAny> = match s.action {
                    Action::StoreTrue => true
                        .into_pyobject(py)
                        .map(|b| b.to_owned().into_any().unbind())
                        .map_err(|e| Err(ParseError(e.to_string())))?,
                    Action::StoreFalse => false
                        .into_pyobject(py)
                        .map(|b| b.to_owned().into_any().unbind())
                        .map_err(|e| Err(ParseError(e.to_string())))?,
                    Action::Store | Action::Append => match (args.as_slice(), s.optional_value) {
                        ([], Some(c)) => PyString::new(py, c).into_any().unbind(),
                        ([one], _) => self.convert(t, s, one).map_err(Err)?,
                        // `--bind=--`: argparse drops the `--` and stores an empty list.
                        _ => PyList::empty(py).into_any().unbind(),
                    },
                };
                if s.action == Action::Append {
                    let list = match &ns.values[i] {
                        Some(l) => l
                            .bind(py)
                            .cast::<PyList>()
                            .cloned()
                            .unwrap_or_else(|_| PyList::empty(py)),
                        None => PyList::empty(py),
                    };
                    let copy =
                        PyList::new(py, list.iter()).map_err(|e| Err(ParseError(e.to_string())))?;
                    copy.append(value)
                        .map_err(|e| Err(ParseError(e.to_string())))?;
                    ns.values[i] = Some(copy.into_any().unbind());
                } else {
                    ns.values[i] = Some(value);
                }
                Ok(())
            }
        }
    }

    fn parse(&self, arg_strings: &[String]) -> Result<Namespace, Result<Exit, ParseError>> {
        let mut ns = Namespace {
            values: (0..SETTINGS.len()).map(|_| None).collect(),
            args: Vec::new(),
        };
        // Classify: 'O' option, 'A' argument, '-' the `--` separator.
        let mut pattern = Vec::with_capacity(arg_strings.len());
        let mut tuples: Vec<Option<OptTuple>> = Vec::with_capacity(arg_strings.len());
        let mut after_dashdash = false;
        for a in arg_strings {
            if after_dashdash {
                pattern.push(b'A');
                tuples.push(None);
            } else if a == "--" {
                pattern.push(b'-');
                tuples.push(None);
                after_dashdash = true;
            } else {
                match self.parse_optional(a).map_err(Err)? {
                    Some(t) => {
                        pattern.push(b'O');
                        tuples.push(Some(t));
                    }
                    None => {
                        pattern.push(b'A');
                        tuples.push(None);
                    }
                }
            }
        }
        let option_indices: Vec<usize> =
            (0..pattern.len()).filter(|&i| pattern[i] == b'O').collect();
        let mut extras: Vec<String> = Vec::new();
        let mut positional_pending = true;

        // The single positional `args` (nargs='*') takes a run of 'A'/'-'.
        let mut consume_positionals = |ns: &mut Namespace, start: usize| -> usize {
            if !positional_pending {
                return start;
            }
            positional_pending = false;
            let n = pattern[start..]
                .iter()
                .take_while(|&&c| c == b'A' || c == b'-')
                .count();
            let mut got: Vec<String> = arg_strings[start..start + n].to_vec();
            if let Some(pos) = got.iter().position(|a| a == "--") {
                got.remove(pos);
            }
            ns.args = got;
            start + n
        };

        let mut start = 0usize;
        let max_option = option_indices.last().copied();
        while max_option.is_some_and(|m| start <= m) {
            let next_option = *option_indices
                .iter()
                .find(|&&i| i >= start)
                .expect("an option at or after start");
            if start != next_option {
                let end = consume_positionals(&mut ns, start);
                if end > start {
                    start = end;
                    continue;
                }
            }
            if pattern[start] != b'O' {
                extras.extend(arg_strings[start..next_option].iter().cloned());
                start = next_option;
            }
            start =
                self.consume_optional(&mut ns, arg_strings, &pattern, &tuples, start, &mut extras)?;
        }
        let stop = consume_positionals(&mut ns, start);
        extras.extend(arg_strings[stop..].iter().cloned());
        if !extras.is_empty() {
            return Err(Err(ParseError(format!(
                "unrecognized arguments: {}",
                extras.join(" ")
            ))));
        }
        Ok(ns)
    }

    fn consume_optional(
        &self,
        ns: &mut Namespace,
        arg_strings: &[String],
        pattern: &[u8],
        tuples: &[Option<OptTuple>],
        start: usize,
        extras: &mut Vec<String>,
    ) -> Result<usize, Result<Exit, ParseError>> {
        let tuple = tuples[start].as_ref().expect("an option tuple at an 'O'");
        let Some(mut target) = tuple.target else {
            extras.push(arg_strings[start].clone());
            return Ok(start + 1);
        };
        let mut option_string = tuple.option_string.clone();
        let mut explicit = tuple.explicit.clone();
        let mut actions: Vec<(Target, Vec<String>)> = Vec::new();
        let stop;
        loop {
            let nargs = nargs_of(target);
            if let Some(e) = explicit.clone() {
                let arg_count = match nargs {
                    Nargs::Zero => 0,
                    Nargs::One | Nargs::Optional => 1,
                };
                let short = option_string.chars().nth(1) != Some('-');
                if arg_count == 0 && short && !e.is_empty() {
                    actions.push((target, Vec::new()));
                    let mut ec = e.chars();
                    let c = ec.next().expect("non-empty explicit argument");
                    option_string = format!("-{c}");
                    let rest: String = ec.collect();
                    match lookup(&self.opts, &option_string) {
                        Some(t) => {
                            target = t;
                            explicit = if rest.is_empty() { None } else { Some(rest) };
                        }
                        None => {
                            return Err(Err(ParseError(format!(
                                "argument {}: ignored explicit argument {}",
                                argument_name(target),
                                py_repr(self.py, &e)
                            ))));
                        }
                    }
                } else if arg_count == 1 {
                    stop = start + 1;
                    actions.push((target, vec![e]));
                    break;
                } else {
                    return Err(Err(ParseError(format!(
                        "argument {}: ignored explicit argument {}",
                        argument_name(target),
                        py_repr(self.py, &e)
                    ))));
                }
            } else {
                let first = start + 1;
                let next_is_arg = pattern.get(first) == Some(&b'A');
                let count = match nargs {
                    Nargs::Zero => 0,
                    Nargs::Optional => usize::from(next_is_arg),
                    Nargs::One if next_is_arg => 1,
                    Nargs::One => {
                        return Err(Err(ParseError(format!(
                            "argument {}: expected one argument",
                            argument_name(target)
                        ))));
                    }
                };
                stop = first + count;
                actions.push((target, arg_strings[first..stop].to_vec()));
                break;
            }
        }
        for (t, args) in actions {
            self.take_action(ns, t, args)?;
        }
        Ok(stop)
    }
}

enum Nargs {
    Zero,
    One,
    Optional,
}

fn nargs_of(t: Target) -> Nargs {
    match t {
        Target::Help | Target::Version => Nargs::Zero,
        Target::Setting(i) => {
            let s = &SETTINGS[i];
            match s.action {
                Action::StoreTrue | Action::StoreFalse => Nargs::Zero,
                _ if s.optional_value.is_some() => Nargs::Optional,
                _ => Nargs::One,
            }
        }
    }
}

/// Python `int(s)` or `int(s, base)`.
pub fn py_int(py: Python<'_>, s: &str, base: Option<u32>) -> PyResult<Py<PyAny>> {
    let int = py.import("builtins")?.getattr("int")?;
    let v = match base {
        Some(b) => int.call1((s, b))?,
        None => int.call1((s,))?,
    };
    Ok(v.unbind())
}

/// gunicorn's `auto_int`: a leading `0` followed by a digit reads as octal; then `int(x, 0)`.
fn auto_int(py: Python<'_>, s: &str) -> PyResult<Py<PyAny>> {
    let mut it = s.chars();
    let octal = it.next() == Some('0') && it.next().is_some_and(|c| is_py_digit(py, c));
    let x = if octal {
        s.replacen('0', "0o", 1)
    } else {
        s.to_string()
    };
    py_int(py, &x, Some(0))
}

/// Python's `re` `\d`: a Unicode decimal digit.
fn is_py_digit(py: Python<'_>, c: char) -> bool {
    PyString::new(py, &c.to_string())
        .call_method0("isdecimal")
        .and_then(|b| b.extract::<bool>())
        .unwrap_or(false)
}

/// Parses `args` (without the program name) the way gunicorn's argparse parser does.
/// On `-h`, `-v` or an error, prints what argparse prints and returns the exit code.
pub fn parse(py: Python<'_>, prog: &str, args: &[String]) -> Result<Namespace, Exit> {
    let parser = Parser {
        py,
        prog,
        opts: option_strings(),
    };
    match parser.parse(args) {
        Ok(ns) => Ok(ns),
        Err(Ok(exit)) => Err(exit),
        Err(Err(ParseError(msg))) => {
            eprint!("{}", help::format_usage(prog));
            eprintln!("{prog}: error: {msg}");
            Err(Exit(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses and returns `Ok(workers, bind, args)` or `Err(message)`.
    fn parse_msg(args: &[&str]) -> Result<Namespace, String> {
        Python::initialize();
        Python::attach(|py| {
            let p = Parser {
                py,
                prog: "rgun",
                opts: option_strings(),
            };
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            match p.parse(&args) {
                Ok(ns) => Ok(ns),
                Err(Ok(exit)) => Err(format!("exit {}", exit.0)),
                Err(Err(ParseError(m))) => Err(m),
            }
        })
    }

    fn get(ns: &Namespace, name: &str) -> Option<String> {
        Python::attach(|py| ns.get(name).map(|v| v.bind(py).str().unwrap().to_string()))
    }

    #[test]
    fn short_forms_and_equals() {
        for form in [
            &["-w3"][..],
            &["-w", "3"],
            &["-w=3"],
            &["--workers=3"],
            &["--workers", "3"],
        ] {
            let ns = parse_msg(form).unwrap();
            assert_eq!(get(&ns, "workers").as_deref(), Some("3"), "{form:?}");
        }
    }

    #[test]
    fn unambiguous_prefix_and_ambiguous_error() {
        let ns = parse_msg(&["--bac", "10", "--threa=2"]).unwrap();
        assert_eq!(get(&ns, "backlog").as_deref(), Some("10"));
        assert_eq!(get(&ns, "threads").as_deref(), Some("2"));
        assert_eq!(
            parse_msg(&["--max", "3"]).err().unwrap(),
            "ambiguous option: --max could match --max-requests, --max-requests-jitter"
        );
        assert_eq!(
            parse_msg(&["--max=3"]).err().unwrap(),
            "ambiguous option: --max=3 could match --max-requests, --max-requests-jitter"
        );
    }

    #[test]
    fn errors_match_argparse() {
        assert_eq!(
            parse_msg(&["-w", "abc"]).err().unwrap(),
            "argument -w/--workers: invalid int value: 'abc'"
        );
        assert_eq!(
            parse_msg(&["-m", "9x"]).err().unwrap(),
            "argument -m/--umask: invalid auto_int value: '9x'"
        );
        assert_eq!(
            parse_msg(&["-w"]).err().unwrap(),
            "argument -w/--workers: expected one argument"
        );
        assert_eq!(
            parse_msg(&["--preload=yes"]).err().unwrap(),
            "argument --preload: ignored explicit argument 'yes'"
        );
        assert_eq!(
            parse_msg(&["--bogus", "app"]).err().unwrap(),
            "unrecognized arguments: --bogus"
        );
        assert_eq!(
            parse_msg(&["app", "-w", "2", "extra"]).err().unwrap(),
            "unrecognized arguments: extra"
        );
    }

    #[test]
    fn positionals_and_double_dash() {
        let ns = parse_msg(&["-w", "2", "app:app", "extra"]).unwrap();
        assert_eq!(ns.args, ["app:app", "extra"]);
        let ns = parse_msg(&["--", "-w"]).unwrap();
        assert_eq!(ns.args, ["-w"]);
        assert!(get(&ns, "workers").is_none());
        let ns = parse_msg(&["-w", "-3"]).unwrap();
        assert_eq!(
            get(&ns, "workers").as_deref(),
            Some("-3"),
            "negative numbers are values"
        );
    }

    #[test]
    fn append_optional_value_and_aliases() {
        let ns = parse_msg(&[
            "-b",
            "a",
            "--bind",
            "b",
            "--log-file",
            "x",
            "--limit-request-field_size",
            "5",
        ])
        .unwrap();
        assert_eq!(get(&ns, "bind").as_deref(), Some("['a', 'b']"));
        assert_eq!(get(&ns, "errorlog").as_deref(), Some("x"));
        assert_eq!(get(&ns, "limit_request_field_size").as_deref(), Some("5"));
        let ns = parse_msg(&["--proxy-protocol"]).unwrap();
        assert_eq!(get(&ns, "proxy_protocol").as_deref(), Some("auto"));
        let ns = parse_msg(&["--proxy-protocol", "app:app"]).unwrap();
        assert_eq!(get(&ns, "proxy_protocol").as_deref(), Some("app:app"));
        let ns = parse_msg(&["-m", "022", "--no-sendfile", "-RD"]).unwrap();
        assert_eq!(get(&ns, "umask").as_deref(), Some("18"));
        assert_eq!(get(&ns, "sendfile").as_deref(), Some("False"));
        assert_eq!(get(&ns, "daemon").as_deref(), Some("True"));
        assert_eq!(
            get(&ns, "enable_stdio_inheritance").as_deref(),
            Some("True")
        );
    }

    #[test]
    fn help_and_version_exit_zero() {
        assert_eq!(parse_msg(&["-h"]).err().unwrap(), "exit 0");
        assert_eq!(parse_msg(&["--vers"]).err().unwrap(), "exit 0");
        // classification happens before any action: the ambiguity wins over -h
        assert!(
            parse_msg(&["-h", "--max"])
                .err()
                .unwrap()
                .starts_with("ambiguous option")
        );
    }
}
