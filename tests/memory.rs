//! `curfew::memory`: the heap's free pages go back to the system after a pass.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn anonymous_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn free_pages_inside_the_heap_go_back_to_the_system() {
    // 40 MB in 4 KB blocks (below the size glibc maps on its own), then every block freed
    // but one in 64: the heap cannot shrink from its top, yet most of its pages are free.
    let blocks: Vec<Vec<u8>> = (0..10_000).map(|i| vec![i as u8; 4000]).collect();
    let kept: Vec<Vec<u8>> = blocks
        .into_iter()
        .enumerate()
        .filter_map(|(i, b)| (i % 64 == 0).then_some(b))
        .collect();
    let before = anonymous_kb();
    curfew::memory::release_free();
    let after = anonymous_kb();
    assert!(
        after + 20_000 < before,
        "anonymous memory {before} kB before, {after} kB after"
    );
    // The blocks still held are intact.
    assert!(
        kept.iter()
            .enumerate()
            .all(|(i, b)| b.len() == 4000 && b[0] == (i * 64) as u8)
    );
}
