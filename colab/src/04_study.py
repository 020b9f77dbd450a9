"""Source of colab/04_study.ipynb: edit here, then run python colab/make_notebooks.py."""

# %% [markdown]
# # The study: pretext tasks against baselines, per dataset and layer, across pretraining sizes
#
# The seed paper compares five pretext tasks with random initialisation and supervised
# pretraining, on several downstream datasets, at three pretraining-set sizes, and measures
# each task's *sensitivity* to the pretraining-set size. `sslflax.study` runs that grid and
# writes `results.csv`, the tables (`study.md`) and the figures. Its default pretrains every
# task on one image (Asano et al. 2020) and on its whole default set, and probes every layer
# beside random init.
#
# On the command line: `python -m sslflax.study --config=configs/study.py --workdir=DIR`
# (under 45 minutes on a 2-core CPU; `:paper` for ImageNet on GPUs). Here we run the small
# `smoke` study, then show the full default study shipped in `results/default-study/`.

# %% include: _setup.py

# %%
import tempfile
from IPython.display import Image, Markdown, display
from sslflax import study
from sslflax.configpath import load_config
from sslflax.log import redirect

config = load_config("configs/study.py", "smoke")
if SMOKE:  # CI: two cells (tests/test_study.py runs the whole smoke study)
  config.experiments, config.subset_sizes = ("random", "rotation"), (32,)
workdir = tempfile.mkdtemp(prefix="sslflax_study_")
with redirect(None):
  markdown = study.run_study(config, workdir)
display(Markdown(markdown))
display(Image(f"{workdir}/figures/accuracy_per_dataset.png"))

# %% [markdown]
# Running it again reuses every finished cell (an interrupted study continues where it
# stopped):

# %%
lines = []
with redirect(lines.append):
  study.run_study(config, workdir)
print(lines[0])

# %% [markdown]
# ## The default study, as measured
# The shipped results of `python -m sslflax.study --config=configs/study.py` on a 2-core CPU.
# `report.write_report` redraws them from the per-cell results in any study workdir.

# %%
shipped = ROOT / "results" / "default-study"
display(Markdown((shipped / "study.md").read_text()))
for name in ("probe_layers_sslflax_sample_fashion", "probe_layers_sslflax_sample_digits",
             "accuracy_per_dataset"):
  display(Image(str(shipped / "figures" / f"{name}.png")))

# %% [markdown]
# ## Label fractions and pictures of what was learned
# Probes trained on 1% and 10% of the labels (`--config.label_fractions`), and the pictures
# `python -m sslflax.visualize` draws for a run (the study draws them for each cell):
# conv1's filters, attention maps per layer and nearest neighbours, for rotation beside
# random init and supervised. Commands: `results/label-fractions/README.md`.

# %%
fractions = ROOT / "results" / "label-fractions"
display(Image(str(fractions / "figures" / "label_fraction_sslflax_sample_fashion.png")))
print((fractions / "pictures" / "README.txt").read_text())
for name in ("conv1_filters", "attention", "neighbours"):
  display(Image(str(fractions / "pictures" / f"{name}.png")))
