//! Text extraction for formats whose parsers are large and whose input is hostile (PDF,
//! DOCX) runs in a child process: `<program> __extract --kind K --memory-mb N --cpu-secs S
//! FILE`. The child caps its own address space and CPU time before it reads a byte, prints the
//! document as JSON, and is killed if it outlives the wall-clock timeout. A crash, a hang or a
//! memory blow-up costs one child, never the server.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use zentoria_extract::{Document, Kind, Limits};

/// Why a sandboxed extraction produced no document; the message is shown to users.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The file itself is the problem (malformed, too large, unsupported): do not retry.
    #[error("{0}")]
    Rejected(String),
    /// The extractor could not run (spawn failure): worth retrying.
    #[error("{0}")]
    Failed(String),
}

pub struct Sandbox {
    pub program: PathBuf,
    pub timeout: Duration,
    pub memory_mb: u64,
    pub max_text_bytes: usize,
}

/// Exit code of a child that rejected its input (message on stderr).
const EXIT_REJECTED: i32 = 3;

impl Sandbox {
    pub async fn extract(&self, path: &Path, kind: Kind) -> Result<Document, SandboxError> {
        let cpu_secs = self.timeout.as_secs().max(1) + 1;
        let mut child = tokio::process::Command::new(&self.program)
            .arg("__extract")
            .arg("--kind")
            .arg(kind.as_str())
            .arg("--memory-mb")
            .arg(self.memory_mb.to_string())
            .arg("--cpu-secs")
            .arg(cpu_secs.to_string())
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                SandboxError::Failed(format!(
                    "cannot start the extractor {}: {e}",
                    self.program.display()
                ))
            })?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        // JSON escaping can at most ~6x the text; anything beyond is not a valid answer.
        let cap = (self.max_text_bytes as u64).saturating_mul(7) + 1024 * 1024;
        let work = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut out_r = (&mut stdout).take(cap);
            let mut err_r = (&mut stderr).take(64 * 1024);
            let (a, b, status) = tokio::join!(
                out_r.read_to_end(&mut out),
                err_r.read_to_end(&mut err),
                child.wait()
            );
            (a.map(|_| out), b.map(|_| err), status)
        };
        let (out, err, status) = match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r,
            Err(_) => {
                // `kill_on_drop` ends the child when `child` goes out of scope.
                return Err(SandboxError::Rejected(format!(
                    "text extraction took longer than {} s and was stopped (knowledge.extract_timeout)",
                    self.timeout.as_secs()
                )));
            }
        };
        let status = status.map_err(|e| SandboxError::Failed(e.to_string()))?;
        let out = out.map_err(|e| SandboxError::Failed(e.to_string()))?;
        let err = String::from_utf8_lossy(&err.unwrap_or_default())
            .trim()
            .to_owned();
        if status.success() {
            return serde_json::from_slice(&out).map_err(|e| {
                SandboxError::Failed(format!("the extractor answered something unreadable: {e}"))
            });
        }
        if status.code() == Some(EXIT_REJECTED) {
            return Err(SandboxError::Rejected(first_line(&err)));
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            if let Some(sig) = status.signal() {
                // SIGXCPU/SIGKILL: CPU limit; SIGABRT/SIGSEGV: typically allocation failure
                // under the memory cap.
                let why = match sig {
                    24 | 9 => format!(
                        "text extraction used more than its CPU time ({cpu_secs} s) and was stopped"
                    ),
                    _ => format!(
                        "text extraction crashed (signal {sig}), most likely on exceeding its memory limit of {} MiB",
                        self.memory_mb
                    ),
                };
                return Err(SandboxError::Rejected(why));
            }
        }
        let why = if err.contains("memory allocation") {
            format!(
                "text extraction exceeded its memory limit of {} MiB",
                self.memory_mb
            )
        } else {
            format!("text extraction failed: {}", first_line(&err))
        };
        Err(SandboxError::Rejected(why))
    }
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("no reason given").trim();
    line.chars().take(500).collect()
}

/// The child's side: parses its arguments, limits itself, extracts, prints JSON. Returns the
/// process exit code.
pub fn child_main(args: &[String]) -> i32 {
    let mut kind = None;
    let mut memory_mb: u64 = 1024;
    let mut cpu_secs: u64 = 60;
    let mut path = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kind" => kind = it.next().and_then(|k| k.parse::<Kind>().ok()),
            "--memory-mb" => {
                memory_mb = it.next().and_then(|v| v.parse().ok()).unwrap_or(memory_mb)
            }
            "--cpu-secs" => cpu_secs = it.next().and_then(|v| v.parse().ok()).unwrap_or(cpu_secs),
            other => path = Some(PathBuf::from(other)),
        }
    }
    let (Some(kind), Some(path)) = (kind, path) else {
        eprintln!("usage: __extract --kind KIND [--memory-mb N] [--cpu-secs S] FILE");
        return 2;
    };
    // Parser panics are caught and reported as malformed input; keep their noise off stderr,
    // whose first line is the reason shown to users.
    std::panic::set_hook(Box::new(|_| {}));
    let bytes = memory_mb.saturating_mul(1024 * 1024);
    if let Err(e) = rlimit::setrlimit(rlimit::Resource::AS, bytes, bytes) {
        eprintln!("cannot limit memory: {e}");
        return 1;
    }
    if let Err(e) = rlimit::setrlimit(rlimit::Resource::CPU, cpu_secs, cpu_secs + 1) {
        eprintln!("cannot limit CPU time: {e}");
        return 1;
    }
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.display());
            return 1;
        }
    };
    let ft = zentoria_extract::FileType::of(kind);
    match zentoria_extract::extract(&data, &ft, &Limits::default()) {
        Ok(doc) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            if serde_json::to_writer(&mut out, &doc).is_err() || out.flush().is_err() {
                return 1;
            }
            0
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_REJECTED
        }
    }
}
