//! Memory budget, CPU share and token buckets, against real wasmtime where it matters.

use super::*;
use wasmtime::ResourceLimiter;

fn budget(limit: usize) -> (MemoryBudget, Arc<Usage>) {
    let usage = Arc::new(Usage::default());
    (MemoryBudget::new(limit, Arc::clone(&usage)), usage)
}

#[test]
fn memories_and_tables_share_one_budget() {
    let (mut limiter, usage) = budget(1 << 20);
    assert!(limiter.memory_growing(0, 512 << 10, None).unwrap(), "first memory");
    assert!(limiter.memory_growing(0, 256 << 10, None).unwrap(), "second memory");
    assert!(!limiter.memory_growing(0, 512 << 10, None).unwrap(), "a third memory past the total");
    let elements = (256 << 10) / TABLE_ELEMENT_BYTES;
    assert!(limiter.table_growing(0, elements, None).unwrap(), "a table filling the rest");
    assert!(!limiter.table_growing(elements, elements + 1, None).unwrap(), "one element more");
    let report = usage.report(1 << 20);
    assert_eq!(report.memory_bytes, 1 << 20);
    assert_eq!(report.memory_refusals, 2);
}

/// A core module with three memories of one page and a table of one element, exporting
/// `grow0`..`grow2 (pages) -> old size or -1` and `grow_table (elements) -> old size or -1`.
fn several_memories_and_a_table() -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction, MemorySection, MemoryType,
        Module, RefType, TableSection, TableType, TypeSection, ValType,
    };
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    module.section(&types);
    let mut functions = FunctionSection::new();
    (0..4).for_each(|_| {
        functions.function(0);
    });
    module.section(&functions);
    let mut tables = TableSection::new();
    tables.table(TableType {
        element_type: RefType::FUNCREF,
        table64: false,
        minimum: 1,
        maximum: None,
        shared: false,
    });
    module.section(&tables);
    let mut memories = MemorySection::new();
    for _ in 0..3 {
        memories.memory(MemoryType { minimum: 1, maximum: None, memory64: false, shared: false, page_size_log2: None });
    }
    module.section(&memories);
    let mut exports = ExportSection::new();
    for (i, name) in ["grow0", "grow1", "grow2", "grow_table"].iter().enumerate() {
        exports.export(name, ExportKind::Func, i as u32);
    }
    module.section(&exports);
    let mut code = CodeSection::new();
    for memory in 0..3 {
        let mut f = Function::new([]);
        f.instruction(&Instruction::LocalGet(0))
            .instruction(&Instruction::MemoryGrow(memory))
            .instruction(&Instruction::End);
        code.function(&f);
    }
    let mut f = Function::new([]);
    f.instruction(&Instruction::RefNull(wasm_encoder::HeapType::FUNC))
        .instruction(&Instruction::LocalGet(0))
        .instruction(&Instruction::TableGrow(0))
        .instruction(&Instruction::End);
    code.function(&f);
    module.section(&code);
    module.finish()
}

#[test]
fn wasmtime_charges_every_memory_and_table_of_an_instance_to_one_budget() {
    let engine = wasmtime::Engine::default();
    let module = wasmtime::Module::new(&engine, several_memories_and_a_table()).unwrap();
    let usage = Arc::new(Usage::default());
    let mut store = wasmtime::Store::new(&engine, MemoryBudget::new(1 << 20, Arc::clone(&usage)));
    store.limiter(|budget| budget);
    let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
    let page = 64 << 10;
    assert_eq!(usage.report(0).memory_bytes, 3 * page + TABLE_ELEMENT_BYTES as u64, "charged at creation");
    let grow = |store: &mut wasmtime::Store<MemoryBudget>, name: &str, n: i32| -> i32 {
        let f = instance.get_typed_func::<i32, i32>(&mut *store, name).unwrap();
        f.call(&mut *store, n).unwrap()
    };
    assert_eq!(grow(&mut store, "grow0", 6), 1, "memory 0 to 7 pages");
    assert_eq!(grow(&mut store, "grow1", 6), 1, "memory 1 to 7 pages: 15 of 16 pages in all");
    assert_eq!(grow(&mut store, "grow2", 2), -1, "memory 2 past the one budget, though its own size is small");
    let table_room = (page as usize - TABLE_ELEMENT_BYTES) / TABLE_ELEMENT_BYTES;
    assert_eq!(grow(&mut store, "grow_table", table_room as i32 + 1), -1, "a table past the rest of the budget");
    assert_eq!(grow(&mut store, "grow_table", 1000), 1, "a table within it");
    let report = usage.report(1 << 20);
    assert_eq!(report.memory_refusals, 2);
    assert!(report.memory_bytes <= 1 << 20);
    assert!(wasmtime::Instance::new(&mut store, &module, &[]).is_err(), "a second instance's memories do not fit");
    drop(store);
    assert_eq!(usage.report(0).memory_bytes, 0, "a dropped store gives its memory back");
}

#[test]
fn hostile_growth_requests_cannot_overflow_the_count() {
    let (mut limiter, usage) = budget(1 << 20);
    assert!(!limiter.table_growing(0, usize::MAX, None).unwrap());
    assert!(!limiter.memory_growing(0, usize::MAX, None).unwrap());
    assert!(!limiter.memory_growing(0, 10, Some(5)).unwrap(), "past the memory's own maximum");
    assert!(limiter.memory_growing(0, 1 << 20, None).unwrap(), "nothing was charged for the refusals");
    assert_eq!(usage.report(0).memory_refusals, 2);
}

#[test]
fn a_component_over_its_share_waits_in_proportion() {
    let start = Instant::now();
    let mut share = CpuShare::new(0.5, start);
    assert_eq!(share.wait(start), None, "a full bucket");
    share.charge(Duration::from_millis(900), start);
    // 0.5 s saved up, 0.9 s used: 0.4 s owed, paid back at 0.5 s a second.
    let wait = share.wait(start).unwrap();
    assert!((wait.as_secs_f64() - 0.8).abs() < 1e-6, "{wait:?}");
    assert_eq!(share.wait(start + Duration::from_millis(800)), None);
}

#[test]
fn idle_time_saves_up_at_most_one_window() {
    let start = Instant::now();
    let mut share = CpuShare::new(0.25, start);
    let later = start + Duration::from_secs(3600);
    share.charge(Duration::from_millis(300), later);
    assert!(share.wait(later).is_some(), "an hour idle buys no more than 250 ms");
    let mut odd = CpuShare::new(f64::NAN, start);
    odd.charge(Duration::from_millis(500), start);
    assert_eq!(odd.wait(start), None, "a share that is not a number means the whole thread");
}

#[test]
fn buckets_refill_at_their_rate_up_to_the_burst() {
    let start = Instant::now();
    let mut bucket = Bucket::new(10.0, 20.0, start);
    assert!((0..20).all(|_| bucket.take(1.0, start)));
    assert!(!bucket.take(1.0, start));
    assert!(bucket.take(1.0, start + Duration::from_millis(100)));
    assert!(!bucket.take(50.0, start + Duration::from_secs(100)), "never more than the burst");
}
