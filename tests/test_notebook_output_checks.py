"""The checks run on every executed notebook cell (tests/notebook_output_checks.py) bite."""

from notebook_output_checks import check_cell

LABEL = "tiny stand-in"


def _stream(text, name="stdout"):
    return {"output_type": "stream", "name": name, "text": text}


def _figure(texts):
    return {"output_type": "display_data",
            "data": {"image/png": "iVBOR...", "text/plain": f"<Figure texts={texts!r}>"}}


def test_clean_labelled_outputs_pass():
    outputs = [_stream("[TINY STAND-IN: RANDOM WEIGHTS]\nR@1 33.3 %\n"),
               _figure(["TINY STAND-IN: RANDOM WEIGHTS", "similarity"])]
    assert check_cell(outputs, ["metric"], LABEL) == []
    assert check_cell([_stream("R@1 33.3 %\n")], [], "") == []  # real mode: no label needed


def test_tf_and_xla_log_lines_fail():
    for line in ("E0000 cuda_executor.cc failed call to cuInit: UNKNOWN ERROR (303)",
                 "WARNING: All log messages before absl::InitializeLog() is called go to stderr",
                 "I tensorflow/core/platform/cpu_feature_guard.cc:210] This TensorFlow binary"):
        assert any("log line" in p for p in check_cell([_stream(line, "stderr")]))


def test_widgets_banners_and_hashes_fail():
    widget = {"output_type": "display_data",
              "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                       "text/plain": "  0%|          | 0/3"}}
    assert any("widget" in p for p in check_cell([widget]))
    assert check_cell([widget], tags=["widget"]) == []  # shown on purpose (notebook 07's box)
    twice = [{"output_type": "display_data", "data": {"text/html": "<div>TINY MODE: x</div>",
                                                      "text/plain": "TINY MODE: x"}},
             _stream("!!! TINY MODE: x\n")]
    assert any("banner" in p for p in check_cell(twice))
    assert check_cell(twice[:1]) == []  # one bundle with an HTML and a text form is one banner
    assert any("hash" in p for p in check_cell([_stream("1cfdb3e6a79e82c0addc6f5fdec5126c65eca965\n")]))


def test_unlabelled_numbers_and_figures_fail_in_tiny_mode():
    assert any("without the stand-in label" in p
               for p in check_cell([_stream("top-1 80.0 %\n")], [], LABEL))
    assert any("metric cell" in p for p in check_cell([_stream("shapes only\n")], ["metric"], LABEL))
    assert any("figure lacks" in p for p in check_cell([_figure(["similarity"])], [], LABEL))
    # A picture of inputs only may opt out, by its tag.
    assert check_cell([_figure(["timeline"])], ["no-model-output"], LABEL) == []
