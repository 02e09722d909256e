//! Careless or hostile CSV input: every refusal is quick, bounded in size, and says where and why.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use odeflash_reference::stimulus::Stimulus;

/// Runs `f` on another thread and fails the test if it takes longer than `secs` (a regression
/// that blocks on a FIFO or reads `/dev/zero` must fail, not hang).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("did not return in time: blocked or reading without end")
}

fn read_err(path: &Path) -> String {
    let path = path.to_path_buf();
    within(20, move || match Stimulus::read(&path) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => format!("{e:#}"),
    })
}

fn parse(text: &str) -> Result<Stimulus, String> {
    Stimulus::parse(Path::new("s.csv"), text.as_bytes()).map_err(|e| e.to_string())
}

#[test]
fn sparse_two_gigabyte_file_is_refused_at_its_first_line() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big.csv");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(2 << 30).unwrap();
    let e = read_err(&p);
    assert!(e.len() < 300, "{} bytes: {}", e.len(), &e[..300]);
    assert!(e.contains("big.csv:1: line longer than 65536 bytes"), "{e}");
}

#[test]
fn wrong_header_is_refused_before_the_body_is_read() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.csv");
    std::fs::write(&p, "t,volts\n0,0\n").unwrap();
    // An 8 GB (sparse) body behind the wrong header: never read, so the answer is immediate.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(8 << 30)
        .unwrap();
    let start = std::time::Instant::now();
    let e = read_err(&p);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        e.contains("s.csv:1: column `v_s`: missing from the header"),
        "{e}"
    );
}

#[test]
fn a_huge_cell_is_quoted_as_an_excerpt() {
    let cell = "x".repeat(60_000);
    let e = parse(&format!("t,v_s\n0,{cell}\n")).unwrap_err();
    assert!(e.len() < 300, "{} bytes", e.len());
    assert!(e.contains("s.csv:2: column `v_s`: `xxx"), "{e}");
    assert!(e.contains("… (60000 bytes)` is not a number"), "{e}");
}

#[test]
fn devices_and_fifos_are_refused_without_blocking() {
    let e = read_err(Path::new("/dev/zero"));
    assert!(
        e.contains("/dev/zero: is a device, not a regular file"),
        "{e}"
    );
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("pipe.csv");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    let e = read_err(&fifo);
    assert!(
        e.contains("pipe.csv: is a FIFO (named pipe), not a regular file"),
        "{e}"
    );
    let e = read_err(d.path());
    assert!(e.contains("is a directory, not a regular file"), "{e}");
}

#[test]
fn a_missing_row_is_reported_at_the_gap() {
    let mut s = String::from("# drive\nt,v_s\n");
    for k in 0..100 {
        if k != 40 {
            s.push_str(&format!("{},0\n", k as f64 * 1e-3));
        }
    }
    // Sample 41 follows the gap; header on line 2, sample k on line 3 + k, one row less.
    let e = parse(&s).unwrap_err();
    assert!(e.contains("s.csv:43: column `t`: time step"), "{e}");
    assert!(e.contains("a missing or shifted row?"), "{e}");
}

#[test]
fn times_rounded_to_the_printed_decimals_are_uniform() {
    // 3 kHz written with six decimals: steps of 0.000333 and 0.000334 s.
    let mut s = String::from("t,v_s\n");
    for k in 0..3000 {
        s.push_str(&format!(
            "{:.6},{:.4}\n",
            k as f64 / 3000.0,
            (k as f64 * 0.01).sin()
        ));
    }
    let st = parse(&s).unwrap();
    assert!((st.dt - 1.0 / 3000.0).abs() < 1e-9, "{}", st.dt);
    // A real gap in the same file is still refused.
    let gap = s.replace("0.333333,", "0.333500,");
    let e = parse(&gap).unwrap_err();
    assert!(e.contains("s.csv:1002: column `t`: time step"), "{e}");
}

#[test]
fn carriage_returns_alone_end_lines() {
    let st = parse("# old Mac\rt,v_s\r0,0.5\r0.001,1\r\r0.002,0\r").unwrap();
    assert_eq!(st.v_s, vec![0.5, 1.0, 0.0]);
    assert_eq!(st.lines, vec![3, 4, 6]);
    // Mixed endings count lines as an editor does.
    let e = parse("t,v_s\r\n0,0\r\n0.001,x\r\n").unwrap_err();
    assert!(
        e.contains("s.csv:3: column `v_s`: `x` is not a number"),
        "{e}"
    );
}

#[test]
fn beyond_f32_is_out_of_range_not_infinite() {
    let e = parse("t,v_s\n0,0\n0.001,1e300\n").unwrap_err();
    assert!(
        e.contains("s.csv:3: column `v_s`: `1e300` is out of the f32 range (±3.4e38)"),
        "{e}"
    );
    let e = parse("t,v_s\n0,0\n0.001,inf\n").unwrap_err();
    assert!(e.contains("`inf` is not a finite number"), "{e}");
}
