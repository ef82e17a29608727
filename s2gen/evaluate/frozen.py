"""A pretrained encoder as the probes call it: frozen, in eval mode, without autograd.

``FrozenEncoder(encoder)(series)`` is the ``Embed`` callable of
``s2gen.evaluate.protocols`` ((n, L) series -> (n, dim) instance embeddings);
``last_token(windows)`` gives the state of each window's last token, which the
token-level protocols use (TS2Vec's forecasting from the last timestamp's
representation, the masking anomaly score). Plain functions stand
in for encoders where only ``Embed`` is needed.
"""

import numpy as np
import torch


class FrozenEncoder:
    """A ``SeriesEncoder`` (``s2gen.pretrain``) behind numpy in, numpy out.

    Parameters
    ----------
    encoder : has ``embed(series, batch_size, resize)`` and
        ``forward_tokens(x, resize)``; put in eval mode here.
    batch_size : series per forward pass.
    resize : how a series reaches the encoder's window: "linear" or "none".
    """

    def __init__(self, encoder, batch_size: int, resize: str = "linear"):
        self.encoder = encoder.eval()
        self.batch_size = batch_size
        self.resize = resize

    def __call__(self, series) -> np.ndarray:
        """(n, L) array or list of 1-D arrays -> (n, dim) float32."""
        with torch.no_grad():
            return self.encoder.embed(series, batch_size=self.batch_size, resize=self.resize)

    @torch.no_grad()
    def last_token(self, windows: np.ndarray) -> np.ndarray:
        """State of the last token of each window: (n, L) -> (n, d) float32.

        ``windows`` may be a strided view; each batch is copied.
        """
        device = next(self.encoder.parameters()).device
        out = None
        for start in range(0, windows.shape[0], self.batch_size):
            chunk = torch.from_numpy(np.array(windows[start : start + self.batch_size], np.float32))
            states = self.encoder.forward_tokens(chunk.to(device), self.resize)  # (b, N, d)
            last = states[:, -1].float().cpu().numpy()  # (b, d)
            if out is None:
                out = np.empty((windows.shape[0], last.shape[1]), np.float32)
            out[start : start + len(last)] = last
        return out
