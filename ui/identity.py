"""Who is asking: each browser is a person, known by a random token it keeps in a cookie; the teacher is a person
who typed the teacher's password (in any tab of that browser, on this server, for ``TEACHER_S``, or until they leave
teacher mode).

Why a random token in a cookie (README, "Serving a class", has the longer answer):

- It needs no login and works wherever the app runs (a laptop, ``./run.sh app``, replicas behind nginx), and it
  survives a reload and is shared by every tab of the browser (all of a person's tabs see their job).
- It cannot be guessed: 256 random bits made by the server (``secrets.token_urlsafe(32)``). What is stored and shown
  is a one-way hash of it (``ui.owners.person_of``), so neither a run folder nor the page reveals anyone's token. A
  student can put any value in their own cookie, and so become someone whose token they know: only themselves.
- A token in the URL would ride along on every link a person shares (the app puts the view in the address bar for
  sharing) and in every proxy's access log: whoever opens the link would become them. The login name nginx's
  ``auth_basic`` checked would be an identity only if every student had a login of their own (deploy/add-user.sh
  makes one per name, but a room usually shares one), and only if no request could reach a replica without nginx
  overwriting the header; deploy/nginx.conf passes no login to the app.

The cookie (``vaelab_person``; Path=/, SameSite=Strict, a year, Secure over HTTPS) is set by a tiny
``st.components.v2`` component in the sidebar, the first time a browser comes without one: Streamlit can read cookies
(``st.context.cookies``, sent with the websocket's opening request) but not set them. Until the browser has it (the
first page of a first visit), the session uses the token it generated, which the component then stores. If two tabs
of a new browser open at once, the component keeps whichever token the browser stored first and tells the other tab,
which takes it.
"""
from __future__ import annotations

import secrets
import threading
import time

import streamlit as st

from . import owners, settings, state

COOKIE = "vaelab_person"
MAX_AGE_S = 365 * 86400
TEACHER_S = 12 * 3600          # a school day: teacher mode then asks for the password again

_JS = """
export default function ({ data, setStateValue }) {
  const name = data.name + "=";
  const found = document.cookie.split("; ").find(c => c.startsWith(name));
  const have = found ? decodeURIComponent(found.slice(name.length)) : "";
  if (/^[A-Za-z0-9_-]{32,64}$/.test(have)) {
    if (have !== data.token) setStateValue("token", have);   // another tab stored its token first: take that one
    return;
  }
  document.cookie = `${name}${data.token}; Path=/; Max-Age=${data.max_age}; SameSite=Strict`
    + (location.protocol === "https:" ? "; Secure" : "");
}
"""
_COMPONENT = st.components.v2.component("vae_lab_person", js=_JS)
_GATE = owners.TeacherGate()
_TEACHERS: dict[str, float] = {}   # person -> until when (monotonic) they are the teacher on this server
_TEACHERS_LOCK = threading.Lock()


def token() -> str:
    """This session's person token: the browser's cookie, else one made now (and stored by ``remember``)."""
    ss = st.session_state
    if ss.get(state.WHO_TOKEN) is None:
        try:
            cookie = st.context.cookies.get(COOKIE)
        except Exception:                     # no browser behind this session (a bare script run)
            cookie = None
        ss[state.WHO_FROM_COOKIE] = owners.token_ok(cookie)
        ss[state.WHO_TOKEN] = cookie if owners.token_ok(cookie) else secrets.token_urlsafe(32)
    return ss[state.WHO_TOKEN]


def person() -> str:
    return owners.person_of(token())


def is_teacher() -> bool:
    if not settings.teacher_password():
        return False
    with _TEACHERS_LOCK:
        return _TEACHERS.get(person(), 0.0) > time.monotonic()


def actor() -> owners.Actor:
    return owners.Actor(person(), teacher=is_teacher())


def remember() -> None:
    """Store this session's token in the browser when it came without one (draws nothing visible)."""
    token()
    if st.session_state.get(state.WHO_FROM_COOKIE):
        return
    result = _COMPONENT(key=state.WHO_COOKIE, data={"name": COOKIE, "token": token(), "max_age": MAX_AGE_S},
                        default={"token": None}, on_token_change=_noop)
    other = result.get("token") if result is not None else None
    if owners.token_ok(other) and other != token():
        st.session_state[state.WHO_TOKEN] = other
        st.session_state[state.WHO_FROM_COOKIE] = True


def _noop() -> None:
    pass


# ------------------------------------------------------------------------------------------ the sidebar

def sidebar() -> None:
    """Who you are here, and the teacher's lock (when the server has a teacher's password)."""
    remember()
    me = owners.label(person())
    teacher = is_teacher()
    has_teacher = bool(settings.teacher_password())
    st.caption(f"You are **{me}**{' (teacher)' if teacher else ''}: your runs are yours in this browser; others can "
               f"watch them, only you{' and the teacher' if has_teacher else ''} can stop them.")
    if has_teacher:
        _teacher_box(teacher)


def _teacher_box(teacher: bool) -> None:
    with st.expander("Teacher", icon=":material/school:", expanded=teacher):
        if teacher:
            st.caption("Teacher mode: Train lists every run with its owner; you can stop, resume and delete any.")
            st.button("Leave teacher mode", key=state.WHO_LEAVE, on_click=_leave)
        else:
            st.text_input("Teacher's password", type="password", key=state.WHO_PASSWORD)
            st.button("Unlock", key=state.WHO_UNLOCK, on_click=_unlock)
        said = st.session_state.get(state.WHO_MESSAGE)
        if said:
            (st.success if said[0] == "ok" else st.error)(said[1])


def _unlock() -> None:
    ss = st.session_state
    given = str(ss.get(state.WHO_PASSWORD) or "")
    ss[state.WHO_PASSWORD] = ""                      # the password does not stay in the session
    me = person()
    ok, line = _GATE.attempt(me, given, settings.teacher_password())
    if not ok and line.startswith("Wrong"):
        time.sleep(1.0)                             # every wrong guess costs the guesser a second, in this tab
        print(f"vae-lab: a wrong teacher password from {owners.label(me)}", flush=True)
    if ok:
        with _TEACHERS_LOCK:
            _TEACHERS[me] = time.monotonic() + TEACHER_S
    ss[state.WHO_MESSAGE] = ("ok" if ok else "error", line)


def _leave() -> None:
    with _TEACHERS_LOCK:
        _TEACHERS.pop(person(), None)
    st.session_state[state.WHO_MESSAGE] = None
