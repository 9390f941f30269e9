"""The help screen: every screen's keys, the grid's legend, and what each does in CLI terms."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# labmgr keys

| where | key | does | as the CLI |
| --- | --- | --- | --- |
| everywhere | `1` `2` `3` `4` `5` | Labs, Timeline, Probes, Servers, Sign-off | |
| | `ctrl+p` | command palette | |
| | `ctrl+t` | dark / light theme | |
| | `?` | this help | |
| | `q` | quit | |
| Labs | `Enter` | open the lab on its timeline | `labmgr lab show` |
| | `n` | new lab from an environment and snapshot | `labmgr lab up ENV.yaml` |
| | `d` | tear down | `labmgr lab down` |
| | `e` | extend the lease | `labmgr lab extend --by 8h` |
| Timeline | `↑↓←→` `hjkl` `PgUp` `PgDn` `Home` `End` | move | |
| | `Enter`, double click | restore the lab to that hour (then run the probes) | `labmgr lab restore --at` |
| | `g` | go to a date | |
| | `a` | only hours with every server's dumps | |
| | `b` | bisect up to that hour: last good, first bad | `labmgr bisect --to` |
| Restore | `c` | cancel: the lab goes back to where it was | Ctrl+C |
| Probes | `r` / `o` | run all / the selected one again | `labmgr probe [--only]` |
| | `Enter` | the probe's whole output | |
| Servers | `c` | serial console (`Ctrl+]` comes back) | `virsh console` |
| Sign-off | `s`, then `Enter` | write and record what you checked | `labmgr signoff` |
| | `x` | export the report | `labmgr report` |

Timeline cells: `●` verified, `○` not verified yet, `◆`/`◇` encrypted (verified / not yet),
`✗` bad, `·` no dump, `…` loading. `▶` marks the lab's point in time, `!` an hour with a
dump a YARA rule matched in (`labmgr dumps scan`); PASS/FAIL is the probe verdict of an
hour already restored.
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide", id="help"):
            yield Markdown(HELP)

    def action_close(self) -> None:
        self.dismiss()
