//! `syncctl pull`: rsync-style words to the client library, and its outcome shown.

use rsyncd_rs::client::{ClientError, Remote, parse_command_line, pull, push};

use crate::cli::{PullArgs, PushArgs};

/// Runs `syncctl push`; returns the exit code.
pub fn run_push(a: &PushArgs) -> Result<i32, ClientError> {
    // rsync's own reading: options anywhere (with their values), the other words paths,
    // the last one the URL.
    let (args, words) = parse_command_line(&a.words)?;
    let Some((url, paths)) = words.split_last() else {
        return Err(ClientError::Options(
            "usage: syncctl push [OPTIONS] SRC... URL".into(),
        ));
    };
    if paths.is_empty() {
        return Err(ClientError::Options(
            "usage: syncctl push [OPTIONS] SRC... URL".into(),
        ));
    }
    let remote = Remote::parse(url, args.port.unwrap_or(rsyncd_rs::client::DEFAULT_PORT))?;
    let mut c = args.connect_options();
    let bar = progress_bar(&mut c);
    let paths: Vec<&[u8]> = paths.iter().map(|p| p.as_bytes()).collect();
    let out = push(&remote, &c, &args.options, &a.root, &paths);
    bar.finish_and_clear();
    let out = out?;
    for line in out.motd.iter().chain(out.lines.iter().map(|l| &l.text)) {
        eprintln!("{line}");
    }
    println!(
        "sent {} bytes, received {} bytes, total size {}, session {:.3} ms",
        out.bytes_written,
        out.bytes_read,
        out.total_size,
        out.elapsed.as_secs_f64() * 1000.0
    );
    Ok(out.code.0)
}

/// Runs `syncctl pull`; returns the exit code.
pub fn run_pull(a: &PullArgs) -> Result<i32, ClientError> {
    let (args, words) = parse_command_line(&a.words)?;
    let [url, dest] = words.as_slice() else {
        return Err(ClientError::Options(
            "usage: syncctl pull [OPTIONS] URL DEST".into(),
        ));
    };
    let remote = Remote::parse(url, args.port.unwrap_or(rsyncd_rs::client::DEFAULT_PORT))?;
    let mut c = args.connect_options();
    let bar = progress_bar(&mut c);
    let out = pull(&remote, &c, &args.options, std::path::Path::new(dest));
    bar.finish_and_clear();
    let out = out?;
    for line in out.motd.iter() {
        eprintln!("{line}");
    }
    for line in &out.lines {
        eprintln!("{}", line.text);
    }
    println!(
        "received {} files ({} bytes literal, {} matched), total size {}",
        out.files_transferred, out.literal_bytes, out.matched_bytes, out.total_size
    );
    Ok(out.code.0)
}

/// A progress line on standard error, shown only on a terminal (indicatif hides it
/// otherwise): files and bytes transferred so far, fed by the client's per-entry events.
fn progress_bar(c: &mut rsyncd_rs::client::ConnectOptions) -> indicatif::ProgressBar {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let (files, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let shown = bar.clone();
    c.progress = Some(Arc::new(move |ev: &rsyncd_rs::client::ItemEvent| {
        if ev.what == rsyncd_rs::client::ItemWhat::Sent {
            let n = files.fetch_add(1, Ordering::Relaxed) + 1;
            let b = bytes.fetch_add(ev.size, Ordering::Relaxed) + ev.size;
            shown.set_message(format!(
                "{n} files, {} transferred: {}",
                indicatif::HumanBytes(b),
                String::from_utf8_lossy(&ev.name)
            ));
        }
    }));
    bar
}
