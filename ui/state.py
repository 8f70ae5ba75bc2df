"""Every session-state key of the app, prefixed by the page that owns it.

Pages use these names for their widgets and never invent keys. Widget values are kept
across page changes by ``keep_widget_values()`` (Streamlit drops the state of widgets
that were not drawn in a run; re-assigning the value before the page draws prevents it).
"""
from __future__ import annotations

import zlib

import streamlit as st

# ---- app-wide: the sidebar
APP_RUN = "app.run"                          # selectbox: the active run's folder path
APP_RUN_PENDING = "app.run_pending"          # a run to make active on the next run (set by training/upload)
APP_RUN_UPLOAD = "app.run_upload"            # file_uploader key prefix (a new key clears the widget)
APP_RUN_UPLOAD_N = "app.run_upload_n"        # counter giving the uploader's key
APP_RUN_UPLOAD_RESULT = "app.run_upload_result"  # ("success" | "error", one line)
APP_TOAST = "app.toast"                      # a message to toast on the next run
LINK_TAKEN = "app.link_taken"                # URL parameters already applied this session (ui/links.py)
LINK_IGNORED = "app.link_ignored"            # [(page, line)] URL values that did not fit, shown on that page
LINK_NOTICE = "app.link_notice"              # (container, page) of this script run, where those lines go

# ---- app-wide: who is asking (ui/identity.py)
WHO_TOKEN = "app.who_token"                  # this session's person token (from the browser's cookie, or made here)
WHO_FROM_COOKIE = "app.who_from_cookie"      # the browser already keeps the token: no component needed
WHO_COOKIE = "app.who_cookie"                # the component that stores the token in the browser
WHO_PASSWORD = "app.teacher_password"        # the password box (emptied after each attempt)
WHO_UNLOCK = "app.teacher_unlock"            # buttons
WHO_LEAVE = "app.teacher_leave"
WHO_MESSAGE = "app.teacher_message"          # ("ok" | "error", one line) after an attempt

# ---- shared between pages
SHARED_SAVED = "shared.saved_points"         # {run_key: [{"name", "z", "label"}]} saved on the Sliders page
SHARED_ENDS = "shared.interp_ends"           # {run_key: {"A": {"z", "label"}, "B": {...}}} for the Latent map

# ---- Home: guided experiments
SCENARIO = "home.scenario"                   # the guided experiment set up (ui/scenarios.py)
SCENARIO_AUTOSTART = "home.scenario_autostart"  # start it on the Train page's next run
SCENARIO_BUTTON = "home.scenario_button"     # buttons: f"{SCENARIO_BUTTON}.{key}"
SCENARIO_DONE = "home.scenario_done"         # run folders a two-run experiment has finished so far, in order
SCENARIO_BY_HAND = "home.scenario_by_hand"   # its first run was stopped: the next Start pressed is its second run

# ---- Train
TRAIN_DATA = "train.data"                    # built-in data set name, or UPLOAD_CHOICE
TRAIN_UPLOAD = "train.upload"                # file_uploader
TRAIN_UPLOADED = "train.uploaded"            # {file_id: {"path", "message", "ok"}}: each upload checked once
TRAIN_UPLOAD_PATH = "train.upload_path"      # the validated upload to train on
TRAIN_IMAGE_SIZE = "train.image_size"
TRAIN_ARCH = "train.arch"
TRAIN_LATENT = "train.latent_dim"
TRAIN_HIDDEN = "train.hidden"
TRAIN_DECODER = "train.decoder_hidden"
TRAIN_ACTIVATION = "train.activation"
TRAIN_LIKELIHOOD = "train.likelihood"
TRAIN_SIGMA = "train.gaussian_sigma"        # the Gaussian likelihood's fixed sigma
TRAIN_BETA = "train.beta"
TRAIN_OBJECTIVE = "train.objective"          # elbo | iwae | btcvae | factorvae (vae.config.TrainConfig.objective)
TRAIN_LAYERS = "train.layers"                # 1 | 2 stochastic layers (vae.config.ModelConfig.latent_layers)
TRAIN_TC_WEIGHT = "train.tc_weight"          # the total correlation's weight (btcvae, factorvae)
TRAIN_WARMUP = "train.warmup"
TRAIN_FREE_BITS = "train.free_bits"
TRAIN_CONDITIONAL = "train.conditional"
TRAIN_EPOCHS = "train.epochs"
TRAIN_BATCH = "train.batch_size"
TRAIN_LR = "train.lr"
TRAIN_SEED = "train.seed"
TRAIN_MAX_TRAIN = "train.max_train"
TRAIN_MAX_TEST = "train.max_test"
TRAIN_BINARIZE = "train.binarize"
TRAIN_BUDGET = "train.time_budget"
TRAIN_QUICK = "train.quick"                  # button: quick demo settings
TRAIN_START = "train.start"
TRAIN_STOP = "train.stop"
TRAIN_RESUME = "train.resume"                # button (prefix, + run folder name in the interrupted list)
TRAIN_WATCH = "train.watch"                  # button (prefix, + run folder name in the in-progress list)
TRAIN_ERROR = "train.error"                  # one line from a refused Start
TRAIN_SEEN_JOB = "train.seen_job"            # the run folder whose ending this session has already handled
TRAIN_FOLLOWED = "train.followed_job"        # the run folder of this person's job this session last showed
TRAIN_WATCHING = "train.watching"            # another person's run followed here, read-only
TRAIN_UNWATCH = "train.unwatch"              # button: stop following it
TRAIN_STOP_ANY = "train.stop_any"            # teacher's Stop buttons (prefix, + run folder name)
TRAIN_DELETE = "train.delete"                # Delete popovers' confirm buttons (prefix, + run folder name)
TRAIN_DROP_UPLOAD = "train.drop_upload"      # Delete buttons of data uploads (prefix, + upload folder name)
TRAIN_NOTICE = "train.notice"                # ("success" | "error", one line) after a list's button

# ---- Reconstructions
RECON_SORT = "recon.sort"
RECON_COUNT = "recon.count"
RECON_INDEX = "recon.index"
RECON_SAMPLES = "recon.samples"
RECON_SEED = "recon.seed"

# ---- Latent map
MAP_METHOD = "map.method"
MAP_CHART = "map.chart"                      # plotly chart selection
MAP_CLICKS = "map.clicks"                    # {run_key: [last two clicked test indices]}
MAP_GRID_N = "map.grid_n"
MAP_LABEL = "map.label"
MAP_ENDS_FROM = "map.ends_from"
MAP_A = "map.a"
MAP_B = "map.b"
MAP_STEPS = "map.steps"
MAP_PAD = "map.pad"
MAP_GIF = "map.gif"                          # download buttons: f"{MAP_GIF}.linear" / ".spherical"
MAP_LAYERS = "map.layers"                    # the layers drawn over the map (pills)
MAP_HOLE = "map.hole"                        # {run_key: index of the clicked hole}
MAP_DIR_TARGET = "map.dir_target"            # "more like a ...": the target class
MAP_DIR_STRENGTH = "map.dir_strength"        # and how far along its direction
MAP_EXPORT = "map.export"                    # download buttons: f"{MAP_EXPORT}.run" / ".csv" / ".png" / ".projector"

# ---- Inside
INSIDE_SOURCE = "inside.source"              # a test image or the user's own
INSIDE_INDEX = "inside.index"                # test image number
INSIDE_UPLOAD = "inside.upload"              # file_uploader: one picture
INSIDE_PAD = "inside.pad"                    # the drawing pad component
INSIDE_SEND = "inside.send"                  # button: the drawing's mu to the Sliders page
INSIDE_INVERT = "inside.invert"              # dark ink on light paper
INSIDE_LABEL = "inside.label"                # a conditional run's label for an uploaded picture
INSIDE_SEED = "inside.eps_seed"              # the eps draw being shown
INSIDE_RESAMPLE = "inside.resample"          # button: a new eps draw
INSIDE_FREEZE = "inside.freeze"              # keep eps when the input changes
INSIDE_LAST_INPUT = "inside.last_input"      # which input the seed was drawn for
INSIDE_CLOUD_N = "inside.cloud_n"            # posterior draws on the map
INSIDE_KL_CHART = "inside.kl_chart"
INSIDE_KL_LOWER_CHART = "inside.kl_lower_chart"
INSIDE_MAP = "inside.map"

# ---- Compare
CMP_RUNS = "compare.runs"                    # multiselect: run folder paths
CMP_CURVES = "compare.curves"
CMP_MAP = "compare.map"                      # charts: f"{CMP_MAP}.{i}"
CMP_REPLAY_RUN = "compare.replay_run"
CMP_REPLAY_EPOCH = "compare.replay_epoch"
CMP_REPLAY_MAP = "compare.replay_map"
CMP_REPLAY_KL = "compare.replay_kl"

# ---- Use cases and Doctor
UC_TOP_N = "usecases.top_n"
UC_TABLE = "usecases.table"                  # tables: f"{UC_TABLE}.semisup" / ".probe" / ".compress" / ...
UC_CHART = "usecases.chart"                  # charts: f"{UC_CHART}.probe" / ".rd"
DOC_HISTORY_ONLY = "doctor.history_only"
DOC_START_PREFIX = "doctor.start."           # + finding code: button that starts the suggested run
DOC_CHART = "doctor.chart"                   # charts: f"{DOC_CHART}.{finding code}"
DOC_MESSAGE = "doctor.message"               # ("success" | "error", text) after a start

# ---- Loss forces
STEP_START = "step.start"                    # the active run or scratch
STEP_BETA = "step.beta"                      # takes effect at the next step
STEP_LR = "step.lr"
STEP_BATCH = "step.batch"
STEP_ONE = "step.one"
STEP_TEN = "step.ten"
STEP_PLAY = "step.play"
STEP_RESET = "step.reset"
STEP_RESETS = "step.resets"                  # counter: a new stepper after Reset
STEP_SHOWN = "step.shown"                    # which arrows
STEP_LOCK = "step.lock_view"                 # keep the map's axes from step to step
STEP_VIEW = "step.view"                      # (stepper key, [xmin, xmax, ymin, ymax]) the locked view
STEP_STEPPER = "step.stepper"                # (key, vae.stepper.Stepper): this session's own model
STEP_MAP = "step.map"
STEP_KL = "step.kl"
STEP_HISTORY = "step.history"

# ---- Sliders
SLIDERS_START = "sliders.start"
SLIDERS_SEED = "sliders.seed"
SLIDERS_INDEX = "sliders.index"
SLIDERS_NEW_SAMPLE = "sliders.new_sample"
SLIDERS_SHOW_ALL = "sliders.show_all"
SLIDERS_PANEL = "sliders.panel"
SLIDERS_Z0 = "sliders.z0"                    # {run_key: z} set by "Send to the sliders"
SLIDERS_PRECISE = "sliders.precise"          # prefix of the number inputs: f"{prefix}.{run}.{dim}"
SLIDERS_PRECISE_LABEL = "sliders.precise_label"
SLIDERS_SEND = "sliders.send"
SLIDERS_SAVE = "sliders.save"
SLIDERS_TO_A = "sliders.to_a"
SLIDERS_TO_B = "sliders.to_b"
SLIDERS_CLEAR = "sliders.clear_saved"
LIVE_SENT = "live.sent"                      # {component key: the spec id whose weights this session sent it}
LIVE_SERVER = "live.server"                  # {panel key: {"frame"/"strip": (data id, payload) not yet sent, ...}}

# ---- Dimensions
DIMS_OTHER = "dims.other"                    # selectbox: the run shown beside the active one ("" = none)
DIMS_LABEL = "dims.label"                    # a conditional run's class for the traversal strips
DIMS_STRIPS = "dims.strips"                  # strip components: f"{DIMS_STRIPS}.{column}"
DIMS_HEAT = "dims.heat"                      # heat maps: f"{DIMS_HEAT}.{column}"
DIMS_LOWER = "dims.lower"                    # a two-layer run's lower-layer KL bars: f"{DIMS_LOWER}.{column}"

# ---- Generate
GEN_N = "gen.n"
GEN_SEED = "gen.seed"
GEN_TEMP = "gen.temperature"
GEN_CLASS = "gen.class"
GEN_REDRAW = "gen.redraw"
GEN_PNG = "gen.png"
GEN_NPZ = "gen.npz"

UPLOAD_CHOICE = "upload"

# value widgets whose state survives page changes (buttons, uploaders and charts cannot be re-assigned)
_KEEP = (TRAIN_DATA, TRAIN_IMAGE_SIZE, TRAIN_ARCH, TRAIN_LATENT, TRAIN_HIDDEN, TRAIN_ACTIVATION, TRAIN_LIKELIHOOD,
         TRAIN_SIGMA, TRAIN_BETA, TRAIN_WARMUP, TRAIN_FREE_BITS, TRAIN_CONDITIONAL, TRAIN_EPOCHS, TRAIN_BATCH, TRAIN_LR,
         TRAIN_SEED, TRAIN_MAX_TRAIN, TRAIN_MAX_TEST, TRAIN_BINARIZE, TRAIN_BUDGET, RECON_SORT, RECON_COUNT,
         RECON_INDEX,
         RECON_SAMPLES, RECON_SEED, MAP_METHOD, MAP_GRID_N, MAP_LABEL, MAP_ENDS_FROM, MAP_A, MAP_B, MAP_STEPS,
         MAP_LAYERS, MAP_DIR_TARGET, MAP_DIR_STRENGTH,
         SLIDERS_START, SLIDERS_SEED, SLIDERS_INDEX, SLIDERS_SHOW_ALL, GEN_N, GEN_SEED, GEN_TEMP, GEN_CLASS,
         INSIDE_SOURCE, INSIDE_INDEX, INSIDE_INVERT, INSIDE_LABEL, INSIDE_FREEZE, INSIDE_CLOUD_N, CMP_RUNS,
         CMP_REPLAY_RUN, STEP_START, STEP_BETA, STEP_LR, STEP_BATCH, STEP_SHOWN, STEP_LOCK, DOC_HISTORY_ONLY, UC_TOP_N,
         TRAIN_OBJECTIVE, TRAIN_LAYERS, TRAIN_TC_WEIGHT, DIMS_OTHER, DIMS_LABEL, APP_RUN)


def keep_widget_values() -> None:
    ss = st.session_state
    for k in _KEEP:
        if k in ss:
            ss[k] = ss[k]


def per_run(store_key: str, run_key: str, default):
    """A per-run slot inside the dict at ``store_key`` (created on first use)."""
    store = st.session_state.setdefault(store_key, {})
    return store.setdefault(run_key, default)


def precise_key(run_key: str, dim: int) -> str:
    return f"{SLIDERS_PRECISE}.{zlib.crc32(run_key.encode()):08x}.{dim}"
