//! The manual page pxe-sidecar(8) and the shell completions, both made from
//! the command-line definitions so they never drift from them. One page,
//! as an admin reads it: the program, then a section per subcommand (its
//! synopsis, description and options), then files, environment, signals.

use std::io::{self, Write};

use clap::Command;
use clap_mangen::Man;

/// The sections after the subcommands (man-pages(7) order).
const TAIL: &str = r#".SH FILES
.TP
\fI/etc/pxe\-sidecar/pxe\-sidecar.toml\fR
The configuration (TOML). Every key is optional; the packaged file lists them all with their defaults.
.TP
\fI/var/lib/pxe\-sidecar\fR
State: the per\-client writable NFS areas and the key that seals NFS file handles.
.TP
\fI/run/pxe\-sidecar/status.sock\fR
The status socket \fBpxe\-sidecar status\fR reads.
.TP
\fI/srv/tftp\fR, \fI/srv/nfsroot\fR
The default TFTP/HTTP root and NFS root.
.SH ENVIRONMENT
.TP
\fBPXE_SIDECAR_CONFIG\fR
The configuration file, as \fB\-\-config\fR.
.TP
\fBPXE_SIDECAR_\fISECTION\fB__\fIKEY\fR
Overrides one key, e.g. \fBPXE_SIDECAR_TFTP__ROOT=/srv/boot\fR.
.TP
\fBPXE_SIDECAR_LOG\fR
Log level or filter (\fBinfo\fR by default; \fBdebug\fR names every packet it stays silent about).
.SH SIGNALS
\fBSIGHUP\fR reloads the configuration (a bad one is logged and the old one kept); \fBSIGTERM\fR and \fBSIGINT\fR stop the server.
.SH EXIT STATUS
0 on success; 1 when \fBcheck\fR, \fBprobe\fR or \fBrootfs check\fR finds a failing step, or on an error, which is one line on standard error naming the key, file, interface or port and the fix.
.SH SEE ALSO
\fBdnsmasq\fR(8), \fBin.tftpd\fR(8), \fBdebootstrap\fR(8), \fBsystemctl\fR(1), \fI/usr/share/doc/pxe\-sidecar/README.md\fR
"#;

/// Writes pxe-sidecar(8) for `cmd` (the whole command line).
pub fn page(mut cmd: Command, out: &mut dyn Write) -> io::Result<()> {
    cmd.build();
    let man = Man::new(cmd.clone())
        .section("8")
        .manual("System Administration");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    // the subcommands are sections of this page, not pages of their own
    writeln!(out, ".SH COMMANDS")?;
    for sub in visible(&cmd) {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        writeln!(
            out,
            ".TP\n\\fB{}\\fR\n{}",
            roff_escape(sub.get_name()),
            roff_escape(&about)
        )?;
    }
    for sub in visible(&cmd) {
        subcommand(sub, out)?;
    }
    out.write_all(TAIL.as_bytes())?;
    man.render_version_section(out)
}

/// One subcommand's section, its nested subcommands after it.
fn subcommand(cmd: &Command, out: &mut dyn Write) -> io::Result<()> {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name()).to_uppercase();
    writeln!(out, ".SH \"{}\"", name.replace('-', "\\-"))?;
    let man = Man::new(cmd.clone());
    let mut body = Vec::new();
    man.render_synopsis_section(&mut body)?;
    man.render_description_section(&mut body)?;
    if cmd
        .get_arguments()
        .any(|a| !a.is_hide_set() && !a.is_global_set())
    {
        man.render_options_section(&mut body)?;
    }
    // its own headings become subsections of this one
    for line in String::from_utf8_lossy(&body).lines() {
        match line.strip_prefix(".SH ") {
            Some(h) => writeln!(out, ".SS {h}")?,
            None => writeln!(out, "{line}")?,
        }
    }
    for sub in visible(cmd) {
        subcommand(sub, out)?;
    }
    Ok(())
}

/// Text safe in a roff line: backslashes and hyphens escaped, no leading
/// control character.
fn roff_escape(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    match t.chars().next() {
        Some('.') | Some('\'') => format!("\\&{t}"),
        _ => t,
    }
}

fn visible(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// Writes the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, mut cmd: Command, out: &mut dyn Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
}
