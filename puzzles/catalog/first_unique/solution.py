"""Reference solution for the first-unique-character puzzle (see writeup.md).

Layer 1 reads the answer as a soft vote: at query p it spreads weight over the start token and the
characters j <= p, scoring each by how often its letter occurs in the prefix so far (once is good,
more is bad, and the difference fades as the prefix grows), by where it stands (later is worse)
and by whether it is the query's own character; the letter with the most weight wins, the start
token's weight reads as '?'. The scores below were fitted to the model's answers (19 numbers).
"""

import torch

# Layer 0 counts each letter's occurrences from position 1 on; layer 1's vote is needed from
# position 4 on (before that, layer 0's counts settle the answer).
CIRCUIT = [
    "L0H0@1..END", "L0H1@1..END", "L0H2@1..END", "L1H0@4..END", "L1H1@4..END", "L1H2@4..END"
]

# Per count of the candidate's letter in the prefix (1, 2, 3, 4 or more): a constant, a part
# weighted by 1 / (p + 2) (it fades as the prefix grows) and a part weighted by p / 19.
COUNT = (
    (3.2, -1.87, -2.37, -2.84),
    (4.0, -5.82, -3.4, -3.09),
    (1.29, 3.36, -1.38, -2.63),
)
LATE = (-4.09, -4.95)  # per j / 19 and per j / (p + 2): later candidates score lower
OWN = -0.39  # the query's own character
REPEAT = -1.67  # a character with an earlier copy of its letter
START = (-0.65, -2.93, 1.46)  # the start token: constant, per 1 / (p + 2), per p / 19


def predict(tokens: torch.Tensor) -> torch.Tensor:
    chars = tokens[:, 1:]
    n, s = chars.shape
    p = torch.arange(s, dtype=torch.float64)[:, None]
    j = torch.arange(s, dtype=torch.float64)[None, :]
    fade, grow = 1 / (p + 2), p / 19
    same = chars[:, :, None] == chars[:, None, :]
    count = same.long().cumsum(2).transpose(1, 2).clamp(max=4) - 1  # [n, p, j]: count - 1
    repeat = torch.tril(same, -1).any(-1).double()[:, None, :]  # j has an earlier copy
    table = torch.tensor(COUNT, dtype=torch.float64)
    score = table[0][count] + table[1][count] * fade + table[2][count] * grow
    score = score + LATE[0] * j / 19 + LATE[1] * j * fade + OWN * (p == j) + REPEAT * repeat
    score = score.masked_fill(j > p, float("-inf"))
    start = (START[0] + START[1] * fade + START[2] * grow).expand(n, s, 1)
    weights = torch.softmax(torch.cat([start, score], -1), -1)
    votes = torch.zeros(n, s, 11, dtype=torch.float64)
    votes.scatter_add_(2, chars[:, None, :].expand(n, s, s), weights[..., 1:])
    votes[..., 0] += weights[..., 0]
    return votes.argmax(-1)
