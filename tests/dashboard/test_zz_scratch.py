from dashboard.app import PAGES
from dashboard.auth import Role
from tests.dashboard.conftest import sign_in
from tests.dashboard.test_page_text import USERS, visible_text


def test_dump(dash_env) -> None:  # noqa: ANN001
    with open("/tmp/i18n_visible.txt", "w") as out:
        for role in (Role.DISTRICT, Role.TECHNICIAN):
            for lang in ("zh", "en"):
                at = sign_in(USERS[role], query={"building": "jiefangbei-tower"})
                at.session_state["lang"] = lang
                for path, _t, _i, roles in PAGES:
                    if role not in roles:
                        continue
                    at.switch_page(path).run()
                    out.write(f"\n===== {path} {role} {lang}\n")
                    for s in dict.fromkeys(visible_text(at)):
                        out.write(s[:400].replace("\n", " | ") + "\n")
