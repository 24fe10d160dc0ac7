//! The module rewriter: re-encodes every section, adds the counting
//! global and the check import, and hands each function body to the
//! graph and the emitter.

use super::*;
use std::collections::BTreeMap;
use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{ConstExpr, ExportKind, Function, Instruction, SectionId, ValType};
use wasmparser::{FunctionBody, Parser};

pub(super) struct Rewriter {
    /// Parameter and result types of each type: the module's, then the
    /// types the rewriter adds after the check's (see [`Rewriter::added`]).
    pub(super) type_sigs: Vec<Signature>,
    /// How many types the module itself declares.
    pub(super) module_types: u32,
    /// Types added after the check's type: internal function types, and
    /// the block types of bodies wrapped in an exit block.
    pub(super) added: Vec<Signature>,
    /// For each of the module's types: its internal type (the count added
    /// as the last parameter and result) and the type of the block bodies
    /// of that type are wrapped in, as type indices or an inline block
    /// type.
    pub(super) internal: BTreeMap<u32, (u32, ExitBlock)>,
    /// Metered bodies of the internal functions, emitted after the check's.
    pub(super) internal_bodies: Vec<Function>,
    /// Whether tables hold the internal versions and `call_indirect` passes
    /// the count: when every function reference (element segments,
    /// `ref.func`) names a defined function and no table is imported,
    /// exported or initialised by an expression, so nothing outside metered
    /// code can see or fill a table.
    pub(super) tables_pass: bool,
    /// Set while element segments are re-encoded: function references there
    /// name internal versions.
    refs_internal: bool,
    /// Functions whose calls are replaced by their bodies, by index.
    pub(super) inlinees: std::rc::Rc<BTreeMap<u32, Inlinee>>,
    /// Operators inlining may still add to the module: as many as its code
    /// has bytes, so that it at most about doubles the module.
    pub(super) inline_left: usize,
    /// Type of each defined function, in order.
    pub(super) func_types: Vec<u32>,
    pub(super) imported_funcs: u32,
    pub(super) globals: u32,
    pub(super) next_body: usize,
    pub(super) imports_done: bool,
    pub(super) globals_done: bool,
    pub(super) failure: Option<String>,
    /// Functions counted per segment (no chord placement was possible).
    pub(super) per_segment: usize,
    /// Whether each defined function checks the count on entry.
    pub(super) entry_checked: Vec<bool>,
}

/// The block type of the exit block a body is wrapped in: its function's
/// results.
#[derive(Clone, Copy, Debug)]
pub(super) enum ExitBlock {
    Empty,
    Value(wasmparser::ValType),
    /// A type index (several results).
    Type(u32),
}

/// Parameter and result types of a function type.
pub(super) type Signature = (Vec<wasmparser::ValType>, Vec<wasmparser::ValType>);

pub(super) type RResult<T> = Result<T, reencode::Error<std::convert::Infallible>>;

impl Rewriter {
    pub(super) fn scan(bytes: &[u8]) -> Result<Self, MeterError> {
        let mut r = Rewriter {
            type_sigs: Vec::new(),
            module_types: 0,
            added: Vec::new(),
            internal: BTreeMap::new(),
            internal_bodies: Vec::new(),
            tables_pass: true,
            refs_internal: false,
            inlinees: Default::default(),
            inline_left: 0,
            func_types: Vec::new(),
            imported_funcs: 0,
            globals: 0,
            next_body: 0,
            imports_done: false,
            globals_done: false,
            failure: None,
            per_segment: 0,
            entry_checked: Vec::new(),
        };
        let mut calls = Vec::new();
        let mut inlinees = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(|e| MeterError::Parse(e.to_string()))? {
                wasmparser::Payload::TypeSection(s) => {
                    for ty in s.into_iter_err_on_gc_types() {
                        let ty = ty.map_err(|e| MeterError::Parse(e.to_string()))?;
                        r.type_sigs
                            .push((ty.params().to_vec(), ty.results().to_vec()));
                    }
                }
                wasmparser::Payload::ImportSection(s) => {
                    for imp in s {
                        match imp.map_err(|e| MeterError::Parse(e.to_string()))?.ty {
                            wasmparser::TypeRef::Func(_) => r.imported_funcs += 1,
                            wasmparser::TypeRef::Global(_) => r.globals += 1,
                            wasmparser::TypeRef::Table(_) => r.tables_pass = false,
                            _ => {}
                        }
                    }
                }
                wasmparser::Payload::FunctionSection(s) => {
                    for f in s {
                        r.func_types
                            .push(f.map_err(|e| MeterError::Parse(e.to_string()))?);
                    }
                }
                wasmparser::Payload::GlobalSection(s) => {
                    r.globals += s.count();
                    for g in s {
                        let g = g.map_err(|e| MeterError::Parse(e.to_string()))?;
                        r.tables_pass &= !refers(&g.init_expr);
                    }
                }
                wasmparser::Payload::TableSection(s) => {
                    for t in s {
                        let t = t.map_err(|e| MeterError::Parse(e.to_string()))?;
                        r.tables_pass &= matches!(t.init, wasmparser::TableInit::RefNull);
                    }
                }
                wasmparser::Payload::ElementSection(s) => {
                    for e in s {
                        match e.map_err(|e| MeterError::Parse(e.to_string()))?.items {
                            wasmparser::ElementItems::Functions(fs) => {
                                for f in fs {
                                    let f = f.map_err(|e| MeterError::Parse(e.to_string()))?;
                                    r.tables_pass &= f >= r.imported_funcs;
                                }
                            }
                            wasmparser::ElementItems::Expressions(..) => r.tables_pass = false,
                        }
                    }
                }
                wasmparser::Payload::CodeSectionStart { .. } => {
                    inlinees.clear();
                    calls.clear();
                }
                wasmparser::Payload::CodeSectionEntry(body) => {
                    r.inline_left += body.range().len();
                    let c = Calls::scan(&body, r.imported_funcs).map_err(MeterError::Parse)?;
                    r.tables_pass &= !c.refs_import;
                    calls.push(c);
                    let k = inlinees.len();
                    let ty = *r
                        .func_types
                        .get(k)
                        .ok_or(MeterError::Parse("more bodies than functions".into()))?;
                    let sig = r
                        .type_sigs
                        .get(ty as usize)
                        .ok_or(MeterError::Parse("bad type index".into()))?;
                    inlinees.push(Inlinee::new(&body, &sig.0, &sig.1));
                }
                wasmparser::Payload::ExportSection(s) => {
                    for e in s {
                        let e = e.map_err(|e| MeterError::Parse(e.to_string()))?;
                        if e.name == REMAINING {
                            return Err(MeterError::ReservedExport);
                        }
                        r.tables_pass &= e.kind != wasmparser::ExternalKind::Table;
                    }
                }
                _ => {}
            }
        }
        r.entry_checked = entry_checks(&calls);
        r.add_internal_types();
        let imported = r.imported_funcs;
        r.inlinees = std::rc::Rc::new(
            (imported..)
                .zip(inlinees)
                .filter_map(|(f, i)| Some((f, i?)))
                .collect(),
        );
        Ok(r)
    }

    pub(super) fn check_type(&self) -> u32 {
        self.module_types
    }

    /// Adds, after the check's type, each type's internal version
    /// (parameters and results with the count appended) and, where its
    /// results are several, the type of the exit block bodies of that type
    /// are wrapped in.
    fn add_internal_types(&mut self) {
        self.module_types = self.type_sigs.len() as u32;
        let i64 = wasmparser::ValType::I64;
        // Every type: `call_indirect` names types no defined function has.
        for ty in 0..self.module_types {
            let (params, results) = self.type_sigs[ty as usize].clone();
            let mut add = |sig: Signature| {
                self.added.push(sig);
                self.module_types + self.added.len() as u32
            };
            let exit = match results.as_slice() {
                [] => ExitBlock::Empty,
                &[t] => ExitBlock::Value(t),
                _ => ExitBlock::Type(add((Vec::new(), results.clone()))),
            };
            let inner = add((
                params.iter().copied().chain([i64]).collect(),
                results.iter().copied().chain([i64]).collect(),
            ));
            self.internal.insert(ty, (inner, exit));
        }
        // Block types are looked up by index in `type_sigs`; the check's
        // type (no parameters, no results) sits before the added ones.
        self.type_sigs.push((Vec::new(), Vec::new()));
        self.type_sigs.extend(self.added.iter().cloned());
    }

    /// Index of defined function `func`'s internal version (the count
    /// passed as its last parameter and result): after the wrappers, which
    /// keep the original indices, and the check's function.
    pub(super) fn internal_func(&self, func: u32) -> u32 {
        func + 2 + self.func_types.len() as u32
    }
    pub(super) fn check_import(&self) -> u32 {
        self.imported_funcs
    }
    /// A defined function that calls the import: a direct call to it costs
    /// the caller less (no import address kept live across loops).
    pub(super) fn check_func(&self) -> u32 {
        self.imported_funcs + 1 + self.func_types.len() as u32
    }
    pub(super) fn remaining_global(&self) -> u32 {
        self.globals
    }

    pub(super) fn emit_imports(&mut self, imports: &mut wasm_encoder::ImportSection) {
        imports.import(
            CHECK.0,
            CHECK.1,
            wasm_encoder::EntityType::Function(self.check_type()),
        );
        self.imports_done = true;
    }

    /// Global holding slot `k` of scratch kind `kind`.
    pub(super) fn scratch_global(&self, kind: usize, k: usize) -> u32 {
        self.globals + 1 + (kind * SCRATCH + k) as u32
    }

    pub(super) fn emit_global(&mut self, globals: &mut wasm_encoder::GlobalSection) {
        let ty = |val_type| wasm_encoder::GlobalType {
            val_type,
            mutable: true,
            shared: false,
        };
        globals.global(ty(ValType::I64), &ConstExpr::i64_const(0));
        for (kind, init) in [
            ConstExpr::i32_const(0),
            ConstExpr::i64_const(0),
            ConstExpr::f32_const(0.0.into()),
            ConstExpr::f64_const(0.0.into()),
        ]
        .iter()
        .enumerate()
        {
            for _ in 0..SCRATCH {
                globals.global(ty(SCRATCH_TYPES[kind]), init);
            }
        }
        self.globals_done = true;
    }
}

/// Scratch globals per value type: around a check's call, the locals a loop
/// uses are parked in globals, so that no value of the loop is live across
/// the call. A value live across a call must sit in a callee-saved register
/// or on the stack for its whole live range (regalloc2 does not split it
/// around a cold call), which would cost the loop a reload per use; values
/// reloaded from globals after the call are new values instead.
pub(super) const SCRATCH: usize = 32;
pub(super) const SCRATCH_TYPES: [ValType; 4] =
    [ValType::I32, ValType::I64, ValType::F32, ValType::F64];

pub(super) fn scratch_kind(t: wasmparser::ValType) -> Option<usize> {
    match t {
        wasmparser::ValType::I32 => Some(0),
        wasmparser::ValType::I64 => Some(1),
        wasmparser::ValType::F32 => Some(2),
        wasmparser::ValType::F64 => Some(3),
        _ => None,
    }
}

/// Section order of the binary format (custom sections excluded).
pub(super) fn order(id: SectionId) -> Option<u8> {
    Some(match id {
        SectionId::Type => 1,
        SectionId::Import => 2,
        SectionId::Function => 3,
        SectionId::Table => 4,
        SectionId::Memory => 5,
        SectionId::Tag => 6,
        SectionId::Global => 7,
        SectionId::Export => 8,
        SectionId::Start => 9,
        SectionId::Element => 10,
        SectionId::DataCount => 11,
        SectionId::Code => 12,
        SectionId::Data => 13,
        _ => return None,
    })
}

impl Reencode for Rewriter {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> RResult<u32> {
        Ok(if func < self.imported_funcs {
            func
        } else if self.refs_internal {
            self.internal_func(func)
        } else {
            func + 1
        })
    }

    fn parse_element_section(
        &mut self,
        elements: &mut wasm_encoder::ElementSection,
        section: wasmparser::ElementSectionReader<'_>,
    ) -> RResult<()> {
        self.refs_internal = self.tables_pass;
        let done = reencode::utils::parse_element_section(self, elements, section);
        self.refs_internal = false;
        done
    }

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> RResult<()> {
        reencode::utils::parse_type_section(self, types, section)?;
        types.ty().function([], []);
        for (params, results) in self.added.clone() {
            let conv = |ts: &[wasmparser::ValType], me: &mut Self| {
                ts.iter()
                    .map(|&t| me.val_type(t))
                    .collect::<Result<Vec<_>, _>>()
            };
            let (p, r) = (conv(&params, self)?, conv(&results, self)?);
            types.ty().function(p, r);
        }
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut wasm_encoder::ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> RResult<()> {
        reencode::utils::parse_import_section(self, imports, section)?;
        self.emit_imports(imports);
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        funcs: &mut wasm_encoder::FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> RResult<()> {
        reencode::utils::parse_function_section(self, funcs, section)?;
        funcs.function(self.check_type());
        for ty in self.func_types.clone() {
            funcs.function(self.internal[&ty].0);
        }
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> RResult<()> {
        reencode::utils::parse_code_section(self, code, section)?;
        let mut f = Function::new([]);
        f.instruction(&Instruction::Call(self.check_import()));
        f.instruction(&Instruction::End);
        code.function(&f);
        for f in std::mem::take(&mut self.internal_bodies) {
            code.function(&f);
        }
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut wasm_encoder::GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> RResult<()> {
        reencode::utils::parse_global_section(self, globals, section)?;
        self.emit_global(globals);
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut wasm_encoder::ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> RResult<()> {
        reencode::utils::parse_export_section(self, exports, section)?;
        exports.export(REMAINING, ExportKind::Global, self.remaining_global());
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> RResult<()> {
        let next = before.map_or(Some(u8::MAX), order);
        let Some(next) = next else { return Ok(()) };
        if !self.imports_done && next > 2 {
            let mut s = wasm_encoder::ImportSection::new();
            self.emit_imports(&mut s);
            module.section(&s);
        }
        if !self.globals_done && next > 7 {
            let mut s = wasm_encoder::GlobalSection::new();
            self.emit_global(&mut s);
            module.section(&s);
        }
        Ok(())
    }

    fn parse_custom_section(
        &mut self,
        _module: &mut wasm_encoder::Module,
        _section: wasmparser::CustomSectionReader<'_>,
    ) -> RResult<()> {
        // Names and debug info would refer to the old function indices.
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        body: FunctionBody<'_>,
    ) -> RResult<()> {
        let ty = self.func_types[self.next_body];
        let func = self.imported_funcs + self.next_body as u32;
        self.next_body += 1;
        let body = self.rewrite_body(&body, ty).unwrap_or_else(|e| {
            self.failure.get_or_insert(e);
            Function::new([])
        });
        self.internal_bodies.push(body);
        // The function's own index keeps its type and becomes a wrapper
        // for callers that are not metered code passing the count along:
        // the host (exports), tables (`call_indirect`), `ref.func`.
        let params = self.type_sigs[ty as usize].0.len() as u32;
        let mut f = Function::new([]);
        for l in 0..params {
            f.instruction(&Instruction::LocalGet(l));
        }
        f.instruction(&Instruction::GlobalGet(self.remaining_global()));
        f.instruction(&Instruction::Call(self.internal_func(func)));
        f.instruction(&Instruction::GlobalSet(self.remaining_global()));
        f.instruction(&Instruction::End);
        code.function(&f);
        Ok(())
    }
}

/// Whether a constant expression refers to a function (`ref.func`).
fn refers(e: &wasmparser::ConstExpr<'_>) -> bool {
    e.get_operators_reader()
        .into_iter()
        .any(|op| matches!(op, Ok(wasmparser::Operator::RefFunc { .. }) | Err(_)))
}
