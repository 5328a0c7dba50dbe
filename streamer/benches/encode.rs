//! Encoder benchmarks (being written).
use criterion::{criterion_group, criterion_main, Criterion};

fn nothing(_c: &mut Criterion) {}

criterion_group!(benches, nothing);
criterion_main!(benches);
