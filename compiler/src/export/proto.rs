//! An ONNX model under construction, owned, and its protobuf encoding.
//!
//! In: nodes, initializers, graph inputs and outputs, appended by `export::onnx` (one
//! IR op at a time). Out: the `ModelProto` bytes of an `.onnx` file.
//!
//! The messages and their wire format come from the `onnx-rs` crate (pure Rust, no
//! dependencies, no `protoc` at build time; its encoder is validated upstream against
//! `onnx.checker`). Its message types borrow every string and byte slice, so this module
//! keeps the owned model and borrows from it only for [`Model::encode`].

use onnx_rs::ast;

/// The ONNX element types the IR's tensors take, plus the i64 of shape and axis operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    I32,
    I64,
}

impl Elem {
    fn data_type(self) -> ast::DataType {
        match self {
            Elem::F32 => ast::DataType::Float,
            Elem::I32 => ast::DataType::Int32,
            Elem::I64 => ast::DataType::Int64,
        }
    }

    /// `Cast`'s `to` attribute (TensorProto.DataType).
    pub fn code(self) -> i64 {
        match self {
            Elem::F32 => 1,
            Elem::I32 => 6,
            Elem::I64 => 7,
        }
    }
}

/// A node attribute.
#[derive(Clone, Debug)]
pub enum Attr {
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
    Str(&'static str, &'static str),
}

/// Constant data: an initializer.
#[derive(Clone, Debug)]
pub enum Data {
    F32(Vec<f32>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

struct Node {
    op: &'static str,
    name: String,
    inputs: Vec<String>,
    output: String,
    attrs: Vec<Attr>,
}

struct Initializer {
    name: String,
    dims: Vec<i64>,
    data: Data,
}

/// A graph input or output: name, element type, fixed shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub elem: Elem,
    pub shape: Vec<usize>,
}

/// The model being built.
pub struct Model {
    nodes: Vec<Node>,
    initializers: Vec<Initializer>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    /// The node names' prefix for what is being emitted now (the IR node, `%12`).
    pub origin: String,
    fresh: usize,
}

impl Model {
    pub fn new() -> Model {
        Model {
            nodes: Vec::new(),
            initializers: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            origin: String::new(),
            fresh: 0,
        }
    }

    /// A value name not used before: `%12.3`, the third temporary of IR node `%12`
    /// (IR values are `%12`, model inputs and parameters have their names).
    pub fn fresh(&mut self) -> String {
        self.fresh += 1;
        format!("{}.{}", self.origin, self.fresh)
    }

    /// Appends `op(inputs)` writing `output`.
    pub fn node_to(&mut self, op: &'static str, inputs: &[&str], attrs: Vec<Attr>, output: &str) {
        let name = format!("{} {}#{}", self.origin, op, self.nodes.len());
        self.nodes.push(Node {
            op,
            name,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            output: output.to_string(),
            attrs,
        });
    }

    /// Appends `op(inputs)` writing a fresh value, and returns its name.
    pub fn node(&mut self, op: &'static str, inputs: &[&str], attrs: Vec<Attr>) -> String {
        let out = self.fresh();
        self.node_to(op, inputs, attrs, &out);
        out
    }

    /// An initializer called `name`.
    pub fn initializer(&mut self, name: &str, dims: &[usize], data: Data) {
        self.initializers.push(Initializer {
            name: name.to_string(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data,
        });
    }

    /// A fresh 1-D i64 initializer (shapes, axes, slice bounds) and its name.
    pub fn ints(&mut self, values: &[i64]) -> String {
        let name = self.fresh();
        self.initializer(&name, &[values.len()], Data::I64(values.to_vec()));
        name
    }

    /// A fresh scalar initializer and its name.
    pub fn scalar(&mut self, data: Data) -> String {
        let name = self.fresh();
        self.initializer(&name, &[], data);
        name
    }

    /// Node op types in order (what tests snapshot).
    pub fn op_types(&self) -> Vec<&'static str> {
        self.nodes.iter().map(|n| n.op).collect()
    }

    /// The `ModelProto` bytes: IR version 8 (the first that opset 18 may use), the
    /// default domain at `opset`.
    pub fn encode(&self, graph_name: &str, opset: i64) -> Vec<u8> {
        let nodes = self
            .nodes
            .iter()
            .map(|n| ast::Node {
                input: n.inputs.iter().map(String::as_str).collect(),
                output: vec![n.output.as_str()],
                name: n.name.as_str(),
                op_type: ast::OpType::from(n.op),
                attribute: n.attrs.iter().map(attribute).collect(),
                ..Default::default()
            })
            .collect();
        let initializer = self
            .initializers
            .iter()
            .map(|i| match &i.data {
                Data::F32(v) => ast::TensorProto::from_f32(&i.name, i.dims.clone(), v.clone()),
                Data::I32(v) => ast::TensorProto::from_i32(&i.name, i.dims.clone(), v.clone()),
                Data::I64(v) => ast::TensorProto::from_i64(&i.name, i.dims.clone(), v.clone()),
            })
            .collect();
        let model = ast::Model {
            ir_version: 8,
            opset_import: vec![ast::OperatorSetId {
                domain: "",
                version: opset,
            }],
            producer_name: "mpc",
            producer_version: env!("CARGO_PKG_VERSION"),
            graph: Some(ast::Graph {
                node: nodes,
                name: graph_name,
                initializer,
                input: self.inputs.iter().map(value_info).collect(),
                output: self.outputs.iter().map(value_info).collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        onnx_rs::encode(&model)
    }
}

fn attribute(a: &Attr) -> ast::Attribute<'_> {
    match a {
        Attr::Int(name, i) => ast::Attribute {
            name,
            r#type: ast::AttributeType::Int,
            i: *i,
            ..Default::default()
        },
        Attr::Ints(name, ints) => ast::Attribute {
            name,
            r#type: ast::AttributeType::Ints,
            ints: ints.clone(),
            ..Default::default()
        },
        Attr::Str(name, s) => ast::Attribute {
            name,
            r#type: ast::AttributeType::String,
            s: s.as_bytes(),
            ..Default::default()
        },
    }
}

fn value_info(v: &ValueInfo) -> ast::ValueInfo<'_> {
    let dim = v
        .shape
        .iter()
        .map(|&d| ast::TensorShapeDimension {
            value: ast::Dimension::Value(d as i64),
            denotation: "",
        })
        .collect();
    ast::ValueInfo {
        name: &v.name,
        r#type: Some(ast::TypeProto {
            value: Some(ast::TypeValue::Tensor(ast::TensorTypeProto {
                elem_type: v.elem.data_type(),
                shape: Some(ast::TensorShape { dim }),
            })),
            denotation: "",
        }),
        ..Default::default()
    }
}
