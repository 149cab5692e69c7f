//! The shape of one row of the settings table ([`super::table::SETTINGS`]): flags, default,
//! validator and rgun's support status, as gunicorn declares them.

/// How argparse stores an option (gunicorn's `action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `store`: takes one value (or an optional one, see [`Setting::optional_value`]).
    Store,
    /// `store_true`: a flag.
    StoreTrue,
    /// `store_const` with `const=False` (`--no-sendfile`).
    StoreFalse,
    /// `append`: repeatable, each value is appended.
    Append,
}

/// How argparse converts an option's value (gunicorn's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    Str,
    /// Python `int()` (base 10).
    Int,
    /// gunicorn's `auto_int`: `0NN` is octal, `0o`/`0x` prefixes accepted.
    AutoInt,
}

/// A setting's declared default, before validation. Environment-derived defaults
/// (`env_default`) are computed at load time instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    None,
    Bool(bool),
    Int(i64),
    Str(&'static str),
    List(&'static [&'static str]),
    Dict(&'static [(&'static str, &'static str)]),
    /// A built-in hook function (rgun represents it as [`super::Value::None`]).
    Hook,
}

/// gunicorn's validator for a setting; see [`super::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validator {
    String,
    PosInt,
    Bool,
    /// `validate_callable(arity)`.
    Callable(u8),
    ListString,
    StringToAddrList,
    StringToList,
    Class,
    Dict,
    ReloadEngine,
    ListOfFilesOrPatterns,
    Chdir,
    User,
    Group,
    StatsdAddress,
    PostRequest,
    ProxyProtocol,
    SslVersion,
    HttpProtocols,
    Http2Cleartext,
    Http2StreamLimit,
    Http2WindowSize,
    Http2FrameSize,
    HeaderMap,
    AsgiLoop,
    AsgiLifespan,
    HttpParser,
}

/// One gunicorn setting.
#[derive(Debug)]
pub struct Setting {
    pub name: &'static str,
    pub section: &'static str,
    /// Command-line option strings (empty: config file only).
    pub cli: &'static [&'static str],
    pub meta: Option<&'static str>,
    pub action: Action,
    /// `nargs='?'`: the value is optional and this is used when it is omitted.
    pub optional_value: Option<&'static str>,
    pub arg_type: ArgType,
    pub default: Default,
    /// `str(default)`, as the `--help` text shows it.
    pub default_help: &'static str,
    /// `str(validated default)`, as `--print-config` shows it (for hooks `<Qual.name()>`).
    pub value_print: &'static str,
    /// The default is computed from the environment at start-up.
    pub env_default: bool,
    pub validator: Validator,
    /// Position among argparse's actions (help order, ambiguity-candidate order).
    pub help_position: Option<usize>,
    /// First line of the setting's documentation.
    pub short: &'static str,
    /// rgun implements it; a refused setting must keep its default.
    pub supported: bool,
}

/// Looks a setting up by name.
pub fn find(name: &str) -> Option<&'static Setting> {
    super::table::SETTINGS.iter().find(|s| s.name == name)
}
