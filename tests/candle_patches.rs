//! The patched candle-core (`vendor/candle-core`, see `vendor/README.md`)
//! computes what the published crate computes: these tests pin the two
//! CPU paths the matmul patch changed, against references built from the
//! same data another way.
use candle_core::{Device, IndexOp, Tensor};

/// Deterministic, non-trivial values (no RNG needed).
fn values(n: usize, salt: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ salt) % 1_000) as f32 / 250.0 - 2.0)
        .collect()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// A batch of matrices multiplied at once (split across threads when there
/// are at least as many matrices as threads) equals each pair multiplied
/// alone (split by gemm), bit for bit: the batch path changes who computes
/// a product, not how it is summed.
#[test]
fn batched_matmul_equals_each_matrix_alone() {
    let dev = Device::Cpu;
    let (b, m, k, n) = (8, 33, 40, 29);
    let lhs = Tensor::from_vec(values(b * m * k, 1), (b, m, k), &dev).unwrap();
    let rhs = Tensor::from_vec(values(b * k * n, 2), (b, k, n), &dev).unwrap();
    // rhs as a transposed view too: attention multiplies by kᵀ.
    let rhs_t = Tensor::from_vec(values(b * n * k, 3), (b, n, k), &dev).unwrap();
    for rhs in [rhs, rhs_t.transpose(1, 2).unwrap()] {
        let batched = lhs.matmul(&rhs).unwrap();
        assert_eq!(batched.dims(), &[b, m, n]);
        for i in 0..b {
            let alone = lhs.i(i).unwrap().matmul(&rhs.i(i).unwrap()).unwrap();
            assert_eq!(bits(&batched.i(i).unwrap()), bits(&alone), "matrix {i}");
        }
    }
}

/// The product is right, not just consistent: one small case by hand.
#[test]
fn batched_matmul_by_hand() {
    let dev = Device::Cpu;
    // [[1, 2], [3, 4]] · [[5], [6]] = [[17], [39]]; [[0, 1], [1, 0]] · [[7], [8]] = [[8], [7]]
    let lhs = Tensor::new(&[[[1f32, 2.], [3., 4.]], [[0., 1.], [1., 0.]]], &dev).unwrap();
    let rhs = Tensor::new(&[[[5f32], [6.]], [[7.], [8.]]], &dev).unwrap();
    let out = lhs.matmul(&rhs).unwrap().to_vec3::<f32>().unwrap();
    assert_eq!(
        out,
        vec![vec![vec![17.], vec![39.]], vec![vec![8.], vec![7.]]]
    );
}

/// An inner dimension of zero gives zeros (gemm writes nothing then).
#[test]
fn matmul_with_empty_inner_dimension_is_zeros() {
    let dev = Device::Cpu;
    let lhs = Tensor::zeros((3, 4, 0), candle_core::DType::F32, &dev).unwrap();
    let rhs = Tensor::zeros((3, 0, 5), candle_core::DType::F32, &dev).unwrap();
    let out = lhs.matmul(&rhs).unwrap();
    assert_eq!(out.dims(), &[3, 4, 5]);
    assert!(
        out.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|&v| v == 0.0)
    );
}

/// Making a view with a strided innermost dimension contiguous (a
/// transpose of the last two dims, a permutation, a narrowed transpose)
/// puts each element where index arithmetic on the source says, for a
/// small copy and for one large enough to be split across threads.
#[test]
fn contiguous_copy_of_strided_views_matches_index_arithmetic() {
    let dev = Device::Cpu;
    for (d0, d1, d2) in [(2, 3, 5), (4, 96, 130)] {
        let data = values(d0 * d1 * d2, 7);
        let t = Tensor::from_vec(data.clone(), (d0, d1, d2), &dev).unwrap();
        let at = |i: usize, j: usize, l: usize| data[(i * d1 + j) * d2 + l];

        // transpose(1, 2): out[i][l][j] = t[i][j][l]
        let out = t.transpose(1, 2).unwrap().contiguous().unwrap();
        let out = out.to_vec3::<f32>().unwrap();
        for (i, plane) in out.iter().enumerate() {
            for (l, row) in plane.iter().enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    assert_eq!(
                        v.to_bits(),
                        at(i, j, l).to_bits(),
                        "transpose at {i},{l},{j}"
                    );
                }
            }
        }

        // permute(2, 0, 1): out[l][i][j] = t[i][j][l]
        let out = t.permute((2, 0, 1)).unwrap().contiguous().unwrap();
        let out = out.to_vec3::<f32>().unwrap();
        for (l, plane) in out.iter().enumerate() {
            for (i, row) in plane.iter().enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    assert_eq!(v.to_bits(), at(i, j, l).to_bits(), "permute at {l},{i},{j}");
                }
            }
        }

        // narrow then transpose: an offset start and a gap between rows.
        let out = t
            .narrow(2, 1, d2 - 2)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        for (i, plane) in out.iter().enumerate() {
            for (l, row) in plane.iter().enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    assert_eq!(
                        v.to_bits(),
                        at(i, j, l + 1).to_bits(),
                        "narrowed at {i},{l},{j}"
                    );
                }
            }
        }
    }
}
