"""The CLI as the transcript checker drives it: replay, export, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openpyxl

TRANSCRIPT = """# a small conversation
@room 幸福里
@now 2026-11-24 09:00
@leader 王团长
王团长: 开团 山东富士苹果 39.9元/箱 20箱成团 限量100箱 每人限购5箱 明晚8点截团
李阿姨: 3号楼 2箱
@private 李阿姨: 我的订单
"""


def tuangou(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_replay_then_export_json_has_the_stable_shape(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text(TRANSCRIPT, "utf-8")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    replay = tuangou("replay", str(path), "--db", db)
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.startswith("bot@幸福里: 🛒 开团 #1 山东富士苹果\n| ")
    assert "bot→李阿姨: 你的订单" in replay.stdout
    exported = tuangou("export", "--db", db, "--format", "json")
    assert exported.returncode == 0, exported.stderr
    deal = json.loads(exported.stdout)["deals"][0]
    assert {k: deal[k] for k in ("id", "room", "title", "leader", "status", "deadline", "threshold",
                                 "stock", "limit_per_member")} == {
        "id": 1, "room": "幸福里", "title": "山东富士苹果", "leader": "王团长", "status": "open",
        "deadline": "2026-11-25T20:00:00+08:00", "threshold": 20, "stock": 100,
        "limit_per_member": 5}
    assert deal["items"] == [{"no": 1, "name": "山东富士苹果", "price": "39.90", "unit": "箱",
                              "stock": None}]
    order = deal["orders"][0]
    assert (order["member"], order["status"], order["note"], order["lines"], order["paid"],
            order["picked_up"]) == ("李阿姨", "active", "3号楼", [{"item": "山东富士苹果", "qty": 2}],
                                    False, False)


def test_export_csv_and_xlsx_carry_the_same_lines(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text(TRANSCRIPT, "utf-8")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    assert tuangou("replay", str(path), "--db", db).returncode == 0
    csv_out = tuangou("export", "--db", db, "--format", "csv", "--deal", "1")
    rows = csv_out.stdout.strip().splitlines()
    assert rows[0].startswith("deal,room,title")
    assert rows[1].split(",")[4] == "李阿姨"
    assert ",2,箱,39.90,79.80," in rows[1]
    xlsx = tmp_path / "o.xlsx"
    assert tuangou("export", "--db", db, "--format", "xlsx", "-o", str(xlsx)).returncode == 0
    sheet = openpyxl.load_workbook(xlsx).active
    assert sheet is not None
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[1][4] == "李阿姨"
    assert values[1][8] == 2


def test_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = tuangou("replay", str(tmp_path / "nope.txt"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "nope.txt" in result.stderr


def test_a_malformed_line_is_named_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("@room 群\n@now 2026-11-24 09:00\n王团长 开团 苹果\n", "utf-8")
    result = tuangou("replay", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "line 3" in result.stderr
    assert result.stdout == ""


def test_export_of_an_unknown_deal_is_an_error(tmp_path: Path) -> None:
    result = tuangou("export", "--db", f"sqlite:///{tmp_path / 'e.db'}", "--deal", "7",
                     "--format", "json")
    assert result.returncode == 2
    assert "#7" in result.stderr
