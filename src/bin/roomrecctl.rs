//! `roomrecctl`: the admin and demo command line for a roomrec device.
//!
//! Only parses the arguments and maps the outcome to an exit code; the logic and the exit-code
//! table live in `roomrec::ctl`.

use clap::Parser;
use roomrec::ctl::{run, Cli};

fn main() {
    // clap exits with 2 on usage errors, matching our own code for bad input.
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // Unprefixed: the messages are sentences ("error forbidden: …", "cannot reach …").
        eprintln!("{e}");
        std::process::exit(e.exit_code());
    }
}
