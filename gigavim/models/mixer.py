"""The bidirectional Mamba mixer of the released Vim models ("bimamba v2", outputs divided by 2).

One ``in_proj`` / ``out_proj`` pair is shared by the two directions; each direction has its own
depthwise conv, x/dt projections, A and D (the backward copies end in ``_b``). The backward
branch is computed in the original token order (anti-causal conv, scan read from the end), which
equals the official flip → causal branch → flip without making flipped copies. Parameter names,
shapes and registration order match hustvl/Vim so official state_dicts load strictly.
"""

from __future__ import annotations

import math
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from gigavim import kernels
from gigavim.models.layers import channels_first_linear, compute_dtype, token_major_linear


class BiMambaMixer(nn.Module):
    """(B, L, D) → (B, L, D) token mixing by a forward and a backward selective scan."""

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | None = None, divide_out: bool = True, conv_bias: bool = True,
                 dt_min: float = 0.001, dt_max: float = 0.1, dt_init_floor: float = 1e-4) -> None:
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.divide_out = divide_out
        e, n, r = self.d_inner, d_state, self.dt_rank
        # Parameters first, then modules: the order state_dict() reports, as in the official model.
        self.A_log = nn.Parameter(torch.empty(e, n))
        self.D = nn.Parameter(torch.empty(e))
        self.A_b_log = nn.Parameter(torch.empty(e, n))
        self.D_b = nn.Parameter(torch.empty(e))
        self.in_proj = nn.Linear(d_model, 2 * e, bias=False)
        self.conv1d = nn.Conv1d(e, e, d_conv, groups=e, padding=d_conv - 1, bias=conv_bias)
        self.x_proj = nn.Linear(e, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, e, bias=True)
        self.conv1d_b = nn.Conv1d(e, e, d_conv, groups=e, padding=d_conv - 1, bias=conv_bias)
        self.x_proj_b = nn.Linear(e, r + 2 * n, bias=False)
        self.dt_proj_b = nn.Linear(r, e, bias=True)
        self.out_proj = nn.Linear(e, d_model, bias=False)
        for p in (self.A_log, self.D, self.A_b_log, self.D_b):
            p._no_weight_decay = True
        self.reset_ssm_parameters(dt_min, dt_max, dt_init_floor)

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min: float = 0.001, dt_max: float = 0.1,
                             dt_init_floor: float = 1e-4) -> None:
        """Official Mamba init: S4D-real A, D = 1, and dt_proj's bias = softplus⁻¹(log-uniform dt).

        Only the forward ``dt_proj`` gets the special init; ``dt_proj_b`` keeps PyTorch's Linear
        default (its bias is zeroed by the model-level init), as in the released training code.
        """
        if self.A_log.is_meta:  # a shape-only build (bundle checks): no values to set, and
            self.dt_proj.bias._no_reinit = True  # torch.arange on "meta" imports torch._dynamo
            return  # (~1 s of every model load)
        a = torch.arange(1, self.d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log.copy_(a.log())
        self.A_b_log.copy_(a.log())
        self.D.fill_(1.0)
        self.D_b.fill_(1.0)
        std = self.dt_rank ** -0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.dt_proj.bias._no_reinit = True

    def _direction(self, x: torch.Tensor, conv: nn.Conv1d, x_proj: nn.Linear, dt_proj: nn.Linear,
                   reverse: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Conv + SiLU and the input-dependent (u, delta, B, C) of one direction, channel-first."""
        u = kernels.causal_conv1d(x, conv.weight, conv.bias, activation="silu", reverse=reverse)
        x_dbl = torch.matmul(x_proj.weight, u)  # (B, R + 2N, L)
        r, n = self.dt_rank, self.d_state
        delta = torch.matmul(dt_proj.weight, x_dbl[:, :r])  # bias goes in as delta_bias
        return u, delta, x_dbl[:, r:r + n], x_dbl[:, r + n:]

    def _forward_fused_cpu(self, hidden: torch.Tensor, fused: ModuleType) -> torch.Tensor:
        """Inference on CPU with the fused kernels: per direction the conv (a 4-tap loop), x_proj,
        then one compiled pass doing dt_proj, softplus, the scan, D·u and — second direction —
        the combine and gate into one output. Full-size tensors alive at once: xz, one
        direction's u, the output (O(L·D), nothing per state)."""
        cd = compute_dtype(hidden.dtype)
        w_in = self.in_proj.weight.to(cd)
        xz = channels_first_linear(w_in, hidden.to(cd).transpose(1, 2))  # (B, 2E, L)
        e, r, n = self.d_inner, self.dt_rank, self.d_state
        out = xz.new_empty(xz.shape[0], e, xz.shape[2])
        branches = ((self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D),
                    (self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b))
        for reverse, (conv, x_proj, dt_proj, a_log, d) in zip((False, True), branches, strict=True):
            u = fused.conv_silu(xz, conv.weight, conv.bias, dim=e, reverse=reverse)
            xd = token_major_linear(u, x_proj.weight.to(cd))  # (B, L, R + 2N)
            fused.scan_pass(u, -torch.exp(a_log.to(cd)), (xd, r, r + n), out, dt_w=dt_proj.weight.to(cd),
                            delta_bias=dt_proj.bias.to(cd), softplus=True, D=d.to(cd),
                            z=(xz, e) if reverse else None, reverse=reverse, combine=reverse,
                            scale=(0.5 if self.divide_out else 1.0) if reverse else 1.0)
            del u, xd
        return token_major_linear(out, self.out_proj.weight.to(cd)).to(hidden.dtype)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        fused = (kernels.fused_cpu(hidden, self.A_log) if kernels.scan_backend(hidden) == "torch"
                 and hidden.shape[1] else None)
        if fused is not None:
            return self._forward_fused_cpu(hidden, fused)
        cd = compute_dtype(hidden.dtype)
        xz = torch.matmul(self.in_proj.weight.to(hidden.dtype), hidden.transpose(1, 2))  # (B, 2E, L)
        x, z = xz[:, :self.d_inner], xz[:, self.d_inner:]
        u, delta, b, c = self._direction(x, self.conv1d, self.x_proj, self.dt_proj, reverse=False)
        u_b, delta_b, b_b, c_b = self._direction(x, self.conv1d_b, self.x_proj_b, self.dt_proj_b,
                                                 reverse=True)
        y = kernels.bidirectional_scan(
            u, delta, -torch.exp(self.A_log.to(cd)), b, c, self.D.to(cd),
            u_b, delta_b, -torch.exp(self.A_b_log.to(cd)), b_b, c_b, self.D_b.to(cd),
            z=z, delta_bias=self.dt_proj.bias.to(cd), delta_bias_b=self.dt_proj_b.bias.to(cd),
            delta_softplus=True,
        )
        if not self.divide_out:  # the January 2024 release summed the two directions
            y = y * 2.0
        return F.linear(y.transpose(1, 2), self.out_proj.weight.to(y.dtype))
