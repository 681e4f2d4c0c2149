//! Where a password comes from: `--password-file`, the `HALFVEIL_PASSWORD` variable, or a
//! prompt on the terminal; never a flag, never echoed, never logged.

use std::io::IsTerminal;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::failure::Failure;

/// The variable a script sets instead of typing.
pub const PASSWORD_VARIABLE: &str = "HALFVEIL_PASSWORD";
const PASSWORD_FILE_BYTES_MAX: u64 = 4096;

/// Reads the password from a file: its first line, without the line ending.
pub fn from_file(path: &Path) -> Result<SecretString, Failure> {
    let display = path.display();
    let bytes = std::fs::metadata(path)
        .map_err(|error| Failure::error(format!("cannot read password file {display}: {error}")))?
        .len();
    if bytes > PASSWORD_FILE_BYTES_MAX {
        return Err(Failure::error(format!(
            "password file {display} is {bytes} bytes; a password file holds one line"
        )));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|error| {
        Failure::error(format!("cannot read password file {display}: {error}"))
    })?);
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(Failure::error(format!("password file {display} is empty")));
    }
    Ok(SecretString::from(line.to_owned()))
}

/// The password for opening an existing file.
pub fn obtain(password_file: Option<&Path>, what: &str) -> Result<SecretString, Failure> {
    obtain_inner(password_file, what, false)
}

/// The password for a new file: asked twice on a terminal.
pub fn obtain_new(password_file: Option<&Path>, what: &str) -> Result<SecretString, Failure> {
    obtain_inner(password_file, what, true)
}

fn obtain_inner(
    password_file: Option<&Path>,
    what: &str,
    confirm: bool,
) -> Result<SecretString, Failure> {
    if let Some(path) = password_file {
        return from_file(path);
    }
    if let Ok(value) = std::env::var(PASSWORD_VARIABLE) {
        if !value.is_empty() {
            return Ok(SecretString::from(value));
        }
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "a password is needed for {what}: give --password-file FILE or set {PASSWORD_VARIABLE}"
        )));
    }
    let first = SecretString::from(
        rpassword::prompt_password(format!("Password for {what}: "))
            .map_err(|error| Failure::error(format!("cannot read the password: {error}")))?,
    );
    if first.expose_secret().is_empty() {
        return Err(Failure::usage("an empty password is not allowed"));
    }
    if confirm {
        let second = Zeroizing::new(
            rpassword::prompt_password("Repeat the password: ")
                .map_err(|error| Failure::error(format!("cannot read the password: {error}")))?,
        );
        if second.as_str() != first.expose_secret() {
            return Err(Failure::usage("the passwords differ"));
        }
    }
    Ok(first)
}
