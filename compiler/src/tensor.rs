//! Host tensors: the one type in which data, arguments and results cross between the
//! runtime's data loaders, the reference interpreter and the execution engines.
//!
//! A tensor is its elements in row-major order; its shape is the graph's business (every
//! argument and output of a step graph has a static type). Floats are `f32` except in the
//! interpreter's f64 mode (gradient checks), hence the element parameter `T`.

/// Owned elements: floats (`f32` unless the interpreter runs in f64) or `i32`.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor<T = f32> {
    Float(Vec<T>),
    Int(Vec<i32>),
}

/// Borrowed elements, for arguments that must not be copied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TensorRef<'a, T = f32> {
    Float(&'a [T]),
    Int(&'a [i32]),
}

impl<T> Tensor<T> {
    /// The float elements of a tensor whose dtype the graph fixes as float.
    ///
    /// # Panics
    /// On an i32 tensor: a step graph's types are checked when it is built and its
    /// arguments when it runs, so this is a bug in the caller, never a user error.
    pub fn floats(&self) -> &[T] {
        match self {
            Tensor::Float(v) => v,
            Tensor::Int(_) => panic!("expected a float tensor"),
        }
    }

    /// The elements of a tensor whose dtype the graph fixes as i32 (panics like [`Tensor::floats`]).
    pub fn ints(&self) -> &[i32] {
        match self {
            Tensor::Int(v) => v,
            Tensor::Float(_) => panic!("expected an i32 tensor"),
        }
    }

    pub fn dtype(&self) -> crate::ir::DType {
        match self {
            Tensor::Float(_) => crate::ir::DType::F32,
            Tensor::Int(_) => crate::ir::DType::I32,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Tensor::Float(v) => v.len(),
            Tensor::Int(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn view(&self) -> TensorRef<'_, T> {
        match self {
            Tensor::Float(v) => TensorRef::Float(v),
            Tensor::Int(v) => TensorRef::Int(v),
        }
    }
}

impl<T> TensorRef<'_, T> {
    pub fn len(&self) -> usize {
        match self {
            TensorRef::Float(v) => v.len(),
            TensorRef::Int(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
