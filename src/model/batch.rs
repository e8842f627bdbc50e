//! Padded batches of (prompt, response) token sequences.
//!
//! Every model entry point takes a [`SeqBatch`]: padding side, position ids and
//! the mask of tokens to score are decided here, once, so that a padded and an
//! unpadded sequence give the same log-probs and rewards.
use candle_core::{Device, Result, Tensor};

/// Which side pads go on. Training uses right padding; batched generation
/// uses left padding so that every row's next token lands in the last column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadSide {
    Left,
    Right,
}

/// A padded batch of token sequences.
#[derive(Debug, Clone)]
pub struct SeqBatch {
    /// Token ids, pads included. Shape [B, T], u32.
    pub ids: Tensor,
    /// 1.0 for real tokens, 0.0 for pads. Shape [B, T], f32.
    pub attn_mask: Tensor,
    /// 1.0 where `ids[b, t]` is a target (response) token whose log-prob is
    /// read from the logits at position t-1. Shape [B, T], f32.
    pub target_mask: Tensor,
    /// Position of each token counted from the row's first real token
    /// (pads get 0). Shape [B, T], u32.
    pub positions: Tensor,
    /// Column of each row's last real token. Shape [B], u32.
    pub last_index: Tensor,
}

impl SeqBatch {
    /// Builds a batch from (prompt, response) id pairs. Only response tokens
    /// are targets. Sequences longer than `max_len` keep their start: the
    /// prompt is kept whole where possible and the response is truncated.
    pub fn from_prompt_response(
        rows: &[(&[u32], &[u32])],
        pad_id: u32,
        side: PadSide,
        max_len: usize,
        device: &Device,
    ) -> Result<Self> {
        let seqs: Vec<(Vec<u32>, usize)> = rows
            .iter()
            .map(|(prompt, response)| {
                let mut ids: Vec<u32> = prompt.iter().chain(response.iter()).copied().collect();
                ids.truncate(max_len.max(1));
                let n_prompt = prompt.len().min(ids.len());
                (ids, n_prompt)
            })
            .collect();
        Self::from_sequences(&seqs, pad_id, side, device)
    }

    /// Builds a batch from whole sequences in which the tokens from index
    /// `n_prompt` on are targets (`n_prompt = len` scores nothing, as for a
    /// reward model).
    pub fn from_sequences(
        seqs: &[(Vec<u32>, usize)],
        pad_id: u32,
        side: PadSide,
        device: &Device,
    ) -> Result<Self> {
        let b = seqs.len();
        let t = seqs.iter().map(|(s, _)| s.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![pad_id; b * t];
        let mut attn = vec![0f32; b * t];
        let mut target = vec![0f32; b * t];
        let mut pos = vec![0u32; b * t];
        let mut last = vec![0u32; b];
        for (row, (seq, n_prompt)) in seqs.iter().enumerate() {
            let offset = match side {
                PadSide::Right => 0,
                PadSide::Left => t - seq.len(),
            };
            for (i, &tok) in seq.iter().enumerate() {
                let col = row * t + offset + i;
                ids[col] = tok;
                attn[col] = 1.0;
                pos[col] = i as u32;
                if i >= *n_prompt && i > 0 {
                    target[col] = 1.0;
                }
            }
            last[row] = (offset + seq.len().max(1) - 1) as u32;
        }
        Ok(Self {
            ids: Tensor::from_vec(ids, (b, t), device)?,
            attn_mask: Tensor::from_vec(attn, (b, t), device)?,
            target_mask: Tensor::from_vec(target, (b, t), device)?,
            positions: Tensor::from_vec(pos, (b, t), device)?,
            last_index: Tensor::from_vec(last, b, device)?,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ids.dims()[0]
    }

    /// True when the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_and_right_padding_place_tokens_and_targets() -> Result<()> {
        let dev = Device::Cpu;
        let rows: Vec<(&[u32], &[u32])> = vec![(&[5, 6], &[7]), (&[5], &[8, 9, 10])];
        let right = SeqBatch::from_prompt_response(&rows, 0, PadSide::Right, 16, &dev)?;
        assert_eq!(
            right.ids.to_vec2::<u32>()?,
            vec![vec![5, 6, 7, 0], vec![5, 8, 9, 10]]
        );
        assert_eq!(
            right.target_mask.to_vec2::<f32>()?,
            vec![vec![0., 0., 1., 0.], vec![0., 1., 1., 1.]]
        );
        assert_eq!(right.last_index.to_vec1::<u32>()?, vec![2, 3]);
        let left = SeqBatch::from_prompt_response(&rows, 0, PadSide::Left, 16, &dev)?;
        assert_eq!(
            left.ids.to_vec2::<u32>()?,
            vec![vec![0, 5, 6, 7], vec![5, 8, 9, 10]]
        );
        assert_eq!(
            left.positions.to_vec2::<u32>()?,
            vec![vec![0, 0, 1, 2], vec![0, 1, 2, 3]]
        );
        assert_eq!(left.last_index.to_vec1::<u32>()?, vec![3, 3]);
        Ok(())
    }

    #[test]
    fn truncation_keeps_the_prompt() -> Result<()> {
        let rows: Vec<(&[u32], &[u32])> = vec![(&[1, 2, 3], &[4, 5, 6])];
        let b = SeqBatch::from_prompt_response(&rows, 0, PadSide::Right, 4, &Device::Cpu)?;
        assert_eq!(b.ids.to_vec2::<u32>()?, vec![vec![1, 2, 3, 4]]);
        assert_eq!(b.target_mask.to_vec2::<f32>()?, vec![vec![0., 0., 0., 1.]]);
        Ok(())
    }
}
