"""Diffusion-model claims (catalogue: gradcore/claims/diffusion.toml).

All from 002 §在现代生成模型中的体现 (扩散模型 paragraph); measured by the recipes of
gradcore.measure.diffusion.
"""
import pytest

from gradcore.measure import diffusion as M
from gradcore.measure import profiles


@pytest.mark.claim("DIFF-01")
def test_snr_high_at_small_t(claim, device):
    """DIFF-01 (002 扩散模型): the SNR is high at small t."""
    claim.compare("SNR(1), linear schedule", claimed=1.0, measured=M.snr(quantity="first", device=device),
                  relation=">")
    claim.compare("SNR(T), linear schedule", claimed=1.0, measured=M.snr(quantity="last", device=device),
                  relation="<")
    claim.compare("max_t SNR(t+1) − SNR(t) (strictly decreasing)", claimed=0.0,
                  measured=M.snr(quantity="max_step", device=device), relation="<")
    bound = M.max_snr_step_bound(profile=profiles.selected_name(), device=device)
    claim.compare("max over β-schedules in (0,1) of max_t SNR(t+1)/SNR(t) − 1 (search; < 0: strictly decreasing)",
                  claimed=0.0, measured=bound, relation="<", atol=0.0)
    t = list(range(1, 1001))
    for name in ("eps", "vlb", "snr", "min_snr_gamma", "v"):
        claim.curve("diffusion-snr-weights", f"v(t) = {name}", t, M.loss_weights(name, device).cpu(),
                    xlabel="time step t", ylabel="SNR(t) / loss weight v(t)", logy=True)
    claim.curve("diffusion-snr-weights", "SNR(t), linear β 1e-4→0.02, T=1000", t,
                M.loss_weights("snr", device).cpu(), xlabel="time step t", ylabel="SNR(t) / loss weight v(t)",
                logy=True)


@pytest.mark.claim("DIFF-02")
def test_loss_weight_large_at_high_snr(claim, device):
    """DIFF-02 (002 扩散模型): the loss weight is large where the SNR is high."""
    ratios = {}
    for name in ("eps", "vlb", "snr", "min_snr_gamma", "truncated_snr", "v"):
        ratios[name] = m = M.loss_weight_ratio(weighting=name, device=device)
        inside = name in ("vlb", "snr")
        claim.compare(f"v(1)/v(T) for weighting {name!r}", claimed=10.0, measured=m, relation=">=",
                      outside=None if inside else f"weighting {name!r}",
                      counterexample=None if inside else {"weighting": name})
    claim.correct(f"v(1)/v(T) is {ratios['vlb']:.1f} for the DDPM variational bound and {ratios['snr']:.3g} for SNR "
                  f"weighting, but {ratios['eps']:.0f} for DDPM's standard L_simple, and {ratios['min_snr_gamma']:.2g} "
                  f"(Min-SNR-5), {ratios['truncated_snr']:.2g} (truncated SNR), {ratios['v']:.2g} (v-prediction): "
                  f"modern weightings make the weight small, not large, at high SNR")


@pytest.mark.claim("DIFF-03")
def test_high_snr_weighting_gives_huge_gradients(claim, device):
    """DIFF-03 (002 扩散模型): high-SNR weighting gives huge raw gradients."""
    seeds, measured = 4, {}
    for name in ("vlb", "snr", "eps", "v"):
        measured[name] = m = M.weighted_gradient_spike(weighting=name, seeds=seeds, device=device)
        inside = name in ("vlb", "snr")
        claim.compare(f"‖∇θ v(1)ℓ_1‖ / median_t ‖∇θ v(t)ℓ_t‖, weighting {name!r} (mean over {seeds} seeds, 95% CI)",
                      claimed=10.0, measured=m, relation=">=", outside=None if inside else f"weighting {name!r}",
                      counterexample=None if inside else {"weighting": name, "seeds": seeds})
        claim.curve("diffusion-raw-gradient", f"weighting {name} (seed 0, MLP 16-64-64-16)", M.T_GRID,
                    M.weighted_norms(name, 0, device).cpu(), xlabel="time step t", ylabel="‖∇θ v(t) ℓ_t‖",
                    logx=True, logy=True)
    spread_raw = M.raw_gradient_spread(seeds, device)
    claim.note(f"unweighted ‖∇θ ℓ_t‖ varies by at most {spread_raw:.2f}× over t: the weighting makes the spike")
    claim.correct(f"the t=1 gradient is {measured['vlb']:.1f}× (VLB) and {measured['snr']:.3g}× (SNR weighting) the "
                  f"median over t, but {measured['eps']:.2f}× under DDPM's standard L_simple and {measured['v']:.2f}× "
                  f"under v-prediction: unweighted gradients vary only {spread_raw:.2f}× over t")


@pytest.mark.claim("DIFF-04")
def test_time_dependent_clipping_uniform(claim, device):
    """DIFF-04 (002 扩散模型): a threshold c(t) ∝ 1/v(t) keeps the effective contribution uniform."""
    def spread(scheme, kappa):
        return M.contribution_spread(scheme=scheme, kappa=kappa, seeds=3, device=device)

    active = spread("time_dependent", "min")
    claim.compare("max/min_t e(t), clip then weight, clipping active at every t (worst of 3 seeds)", claimed=2.0,
                  measured=active, relation="<=")
    half = spread("time_dependent", "median")
    claim.compare("max/min_t e(t), clip then weight, κ = median weighted norm", claimed=2.0, measured=half,
                  relation="<=", outside="raw gradient below c(t) at some steps",
                  counterexample={"weighting": "snr", "kappa": "median_t v(t)‖∇ℓ_t‖"})
    after = spread("time_dependent_weighted", "min")
    claim.compare("max/min_t e(t), weighted gradient clipped at c(t) = κ/v(t)", claimed=2.0, measured=after,
                  relation="<=", outside="clipping applied after weighting",
                  counterexample={"weighting": "snr", "scheme": "time_dependent_weighted"})
    none, global_ = spread("none", "median"), spread("global", "median")
    for label, scheme, kappa in (("none", "none", "median"), ("global", "global", "median"),
                                 ("time_dependent, clipping active at all t", "time_dependent", "min"),
                                 ("time_dependent, κ = median (inactive at half the steps)", "time_dependent",
                                  "median")):
        claim.curve("diffusion-effective-contribution", f"{label} (SNR weighting, seed 0)", M.T_GRID,
                    M.contributions(scheme, kappa, 0, device=device).cpu(), xlabel="time step t",
                    ylabel="effective contribution e(t)", logx=True, logy=True)
    rel = M.clip_weight_equivalence(seed=0, device=device)
    claim.note(f"clip-then-weight at κ/v(t) equals per-step clipping of the weighted gradient at constant κ "
               f"(max relative difference {rel:.1e}); global clipping leaves the spread unchanged "
               f"(max/min {global_:.3g} vs {none:.3g} with no clipping)")
    claim.correct(f"e(t) is uniform (max/min {active:.3f}) only while every step's raw gradient exceeds "
                  f"c(t) = κ/v(t), i.e. κ ≤ min_t v(t)‖∇ℓ_t‖; with κ at the median, max/min is {half:.3g}, and "
                  f"clipping the weighted gradient at c(t) gives {after:.3g}; without clipping it is {none:.3g}, "
                  f"and global clipping does not change it")
