"""Reference solution for the sorted-list model: its attention step simulated, mistakes included.

The one layer works by content. At each answer position the query holds a number ``v`` (``SEP``
counts as -1). Each head scores every key holding a number ``k`` as
``DISTANCE[h][k - v + 50] + KEY_VALUE[h][k]``: high just above ``v``, falling as ``k - v`` grows
and low below ``v`` (the distance profile), plus a per-value preference of each head (L0H0 scores
4-19 lower, L0H1 44-49). A softmax over the keys the query can see (the list, ``SEP``, the
sorted numbers so far) makes the attention; each attended number adds a readout bump centred on
itself (``READOUT[h][c - k + 50]`` for class ``c``), and the query's own number and a class bias
add small terms. The answer is the class with the largest sum.

On random lists the nearest number above ``v`` wins by far. After a large gap it does not: the
next number's score has decayed, numbers further up and below ``v`` share the attention, and the
blended bumps can peak on the number after the next, inside the gap or on ``v`` itself; those are
the model's mistakes. The tables are fitted to the model's output distribution (KL) on random
lists and lists with a wide gap, then rounded to integers: about 760 numbers, not the model's
30,000 weights.
"""

import torch

# Both layer-0 heads attend to the smallest list number above the current one and copy it.
CIRCUIT = ["L0H0@10,12,13,14,15,16,17,19", "L0H1@10,11,12,13,14,17,18"]

# fmt: off
SCORE_UNIT = 0.023603
LOGIT_UNIT = 0.028494
DISTANCE = [[0, 89, 80, 81, 60, 39, 39, 48, 7, -13, -10, -21, -34, -41, -48, -56, -58, -66, -69, -70, -75,
    -90, -79, -92, -98, -102, -92, -104, -129, -93, -182, -141, -139, -137, -140, -95, -77, -81,
    -112, -85, -70, -98, -158, -155, -113, -147, -168, -99, -71, -78, -33, 89, 94, 94, 93, 94,
    90, 87, 84, 81, 74, 69, 66, 66, 54, 49, 44, 39, 33, 28, 24, 16, 8, 2, 3, -17, -29, -48, -59,
    -59, -80, -79, -86, -81, -93, -74, -98, -99, -109, -94, -90, -110, -92, -93, -80, -60, -114,
    -117, -168, -131, -141], [0, 22, -1, 10, 15, 17, -3, -3, -14, -30, -22, -38, -37, -52, -62,
    -65, -69, -71, -88, -79, -91, -111, -109, -94, -81, -126, -138, -145, -61, -77, -77, -69,
    -83, -72, -78, -67, -85, -82, -81, -90, -198, -89, -129, -166, -109, -83, -111, -108, -113,
    -97, -46, 126, 118, 106, 96, 86, 75, 67, 58, 52, 45, 44, 28, 21, 19, 13, 11, -3, -13, -24,
    -27, -36, -56, -54, -131, -82, -81, -74, -83, -222, -230, -255, -232, -219, -109, -201,
    -188, -143, -99, -98, -107, -91, -63, -98, -46, -60, -13, -15, -45, -41, -96]]
KEY_VALUE = [[1, 28, 6, 7, -10, -7, -27, -42, -75, -24, -101, -26, -61, -60, -23, -62, -43, -28, -18, -21,
    -12, -16, 12, 17, 20, 30, 40, 16, -44, 53, 0, 15, 7, 18, 19, 27, 38, 29, 30, 12, 27, 5, 20,
    32, 44, 46, 47, 56, 53, 59, 0], [9, -15, -3, -21, -9, -17, -1, 10, 23, -1, 30, 6, 38, 32,
    16, 27, 21, 17, 24, 24, 21, 29, 4, 3, 2, 7, 8, 6, 48, -24, 10, 16, 10, 21, 20, -6, 3, 1,
    -13, 16, -11, -6, 4, -4, -17, -39, -38, -36, -69, -50, 0]]
READOUT = [[0, -3, 3, -6, 10, -20, -13, -12, 10, -5, -27, -17, -13, -12, -31, -13, 2, -24, -20, -26, -11,
    -31, 1, -6, -12, -8, -11, -4, -18, -15, -20, -13, -28, -23, -17, -15, -22, -20, -23, -15,
    -12, -11, -17, -10, -16, -11, -13, -11, -10, -5, 76, -45, -42, -34, -32, -34, -29, -28, -28,
    -18, -33, -25, -17, -30, -24, -24, -35, -13, -20, -22, -14, -9, -20, -28, -33, -18, 2, -20,
    -22, -26, -17, -23, -14, -28, -19, -9, 2, -4, -4, -4, 2, 9, 11, 19, 26, 25, 43, 40, 21, 21,
    0], [0, -46, -34, -44, -56, -11, -37, -14, -36, -20, -18, -31, -23, -1, 26, 7, -56, 16, 10,
    -3, -40, 17, -43, -23, -30, -38, -23, -6, -5, -1, 6, -6, 25, 1, 9, 0, 4, 9, 6, -6, -1, -9,
    4, -5, 0, 5, 7, 9, 11, 10, 77, -59, -51, -44, -40, -23, -30, -23, -24, -21, -7, -8, -10, 3,
    -11, -1, -7, -12, -7, 0, -13, -8, -10, -5, 1, 2, -7, -6, -7, 7, 7, 7, 4, 11, 4, -4, -6, 5,
    5, -4, -1, 6, -2, -2, -7, -10, -19, -22, 0, -13, 0]]
SEP_READOUT = [[-38, -13, -4, -7, -21, -28, -3, -25, 19, -97, 26, -14, 108, -23, -2, 65, 27, 12, 1, 21, -31,
    -23, 27, -21, 16, -15, -20, 89, -97, 41, 107, 74, 174, 115, 147, 156, 74, 21, -12, 40, -43,
    -255, 32, 84, 140, 22, -128, -94, 77, -74], [-51, -39, -21, -56, 64, -56, 20, -60, -6, 167,
    -159, 3, 46, -132, -64, -131, 18, 33, 57, 97, 101, 106, 29, 55, 57, 60, 104, 30, 211, 91,
    108, 114, 6, 87, 72, -3, 85, -29, 2, 77, -106, 42, 25, -66, -70, -147, -30, -41, 17, -51]]
QUERY_READOUT = [0, 0, -31, -16, -21, -19, -17, -20, -13, -12, -10, -2, -10, -5, 8, -9, -2, -5, 2, -2, -2, -2,
    -2, -3, 6, -7, -3, -8, -9, -10, -10, -9, -8, -11, -9, -11, -15, -15, -9, -10, -9, -7, -1,
    -2, -7, -13, -6, -10, -7, -2, -25, 9, 7, 6, 5, 3, 5, 3, 4, 0, 2, -1, 0, -3, 1, -2, -1, -1,
    0, 1, 0, 3, 7, 5, 5, 4, 4, 10, 8, 5, 5, 4, 1, 0, -3, -8, -2, -9, -7, -10, -10, -11, -14,
    -19, -16, -23, -21, -24, -30, -29, -33]
CLASS_BIAS = [-5, -8, -8, -1, -4, -2, 2, 2, 7, -1, 7, 2, 2, 5, 5, 7, 7, 6, 2, 3, 4, 3, 4, 1, 1, -1, -7, 7,
    -1, -4, 3, 2, 6, -3, -1, 4, -5, 7, 5, -5, 14, 8, 1, 0, -2, 6, 3, -3, -3, -1]


# fmt: on


def _table(rows: list, unit: float) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32) * unit


def predict(tokens: torch.Tensor) -> torch.Tensor:
    tokens = torch.as_tensor(tokens).long()
    values = torch.where(tokens == 50, -1, tokens)  # SEP behaves like a number below 0
    query = values[:, 10:20]  # [n, 10]
    distance = (values[:, None, :] - query[:, :, None] + 50).clamp(0, 100)  # [n, 10, 20]
    score = _table(DISTANCE, SCORE_UNIT)[:, distance]
    score = score + _table(KEY_VALUE, SCORE_UNIT)[:, values.clamp(min=0)][:, :, None, :]
    visible = torch.arange(20)[None, :] <= torch.arange(10, 20)[:, None]  # causal: [10, 20]
    attention = score.masked_fill(~visible, float("-inf")).softmax(-1)  # [2, n, 10, 20]
    classes = torch.arange(50)
    offset = (classes[None, None, :] - values[:, :, None]).clamp(-50, 50) + 50  # [n, 20, 50]
    bumps = _table(READOUT, LOGIT_UNIT)[:, offset]  # [2, n, 20, 50]
    is_sep = (values == -1)[None, :, :, None]
    bumps = torch.where(is_sep, _table(SEP_READOUT, LOGIT_UNIT)[:, None, None, :], bumps)
    logits = torch.einsum("hnqk,hnkc->nqc", attention, bumps)
    own = (classes[None, None, :] - query[:, :, None]).clamp(-50, 50) + 50
    logits = logits + _table(QUERY_READOUT, LOGIT_UNIT)[own] + _table(CLASS_BIAS, LOGIT_UNIT)
    return logits.argmax(-1)
