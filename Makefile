# Two commands for a fresh clone:  `make demo` (main job on sample_data/)  and  `make test`.
# Each creates ./.venv and installs detprune into it first (idempotent: re-installs
# only when pyproject.toml changes).

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.stamp-install
OUT    ?= out/sample_pruned
# pretrained backbone for the demo: the development checkout's COCO YOLOv5n beside this
# one when present (read in place, never copied), else detprune's own lookup (`auto`)
WEIGHTS ?= $(firstword $(wildcard ../shared/weights/yolov5n.pt) auto)

.PHONY: demo test lint install clean-demo

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/detprune inspect sample_data --max-problems 5
	$(VENV)/bin/detprune prune sample_data --method mms --keep 0.3 --imgsz 320 --weights $(WEIGHTS) --out $(OUT) --force

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check detprune tests scripts
