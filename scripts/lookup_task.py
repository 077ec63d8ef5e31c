#!/usr/bin/env python3
"""The tools quickstart's task (scripts/quickstart_tools.sh): questions about a small table that only a tool can answer.

  make  --out DIR [--seed N]   writes table.json (the hidden ground truth), policy_sft.jsonl, prompts.jsonl and
                               eval_prompts.jsonl (held out)
  tool  --table FILE           the `lookup` tool: reads {"key": "..."} on stdin, prints "<key>: <code>" (exit 1 for
                               a key that is not in the table, saying so on stderr)
  judge                        a command judge (docs/config.md, backend = "command") that reads each trajectory as a
                               careful grader would: the policy must have looked up the item the question asks about
                               and answered with the code the tool returned. It never sees the table.

The question is "What is the code of <item>?"; each item's code is a random 3-digit number, so the policy cannot know
it and must call the tool. The policy's SFT data looks the right item up only --follow-rate (0.5) of the time
(another item otherwise) and then answers with whatever code the tool returned, so it starts out often wrong; RL with
the judge's reward teaches it to look up the item asked about. The ground truth (each prompt's "reference", the true
code) is checked by a grader of weight 0: reported, never rewarded.
"""
import argparse
import json
import random
import re
import sys

ITEMS = ["Lima", "Oslo", "Cairo", "Quito", "Dakar", "Hanoi", "Perth", "Riga", "Sofia", "Tunis", "Accra", "Bern",
         "Doha", "Minsk", "Rabat", "Seoul"]
QUESTIONS = ["What is the code of {}?", "Look up the code of {}.", "Which code does {} have?"]


def call(key):
    return '<tool_call>{"name": "lookup", "arguments": {"key": "%s"}}</tool_call>' % key


def make(args):
    rng = random.Random(args.seed)
    table = {item: str(rng.randint(100, 999)) for item in ITEMS}
    with open(f"{args.out}/table.json", "w") as f:
        json.dump(table, f, indent=1)
    with open(f"{args.out}/policy_sft.jsonl", "w") as f:
        for _ in range(args.policy_rows):
            item = rng.choice(ITEMS)
            question = rng.choice(QUESTIONS).format(item)
            key = item if rng.random() < args.follow_rate else rng.choice([i for i in ITEMS if i != item])
            messages = [{"role": "user", "content": question}]
            if rng.random() < 0.5:  # the first turn: a call
                messages.append({"role": "assistant", "content": call(key)})
            else:  # the second turn: the answer, with the code the tool gave
                messages += [{"role": "assistant", "content": call(key)},
                             {"role": "tool", "name": "lookup", "content": f"{key}: {table[key]}"},
                             {"role": "assistant", "content": f"The code of {item} is {table[key]}."}]
            f.write(json.dumps({"messages": messages}) + "\n")
    for name, n in (("prompts", args.prompts), ("eval_prompts", args.eval_prompts)):
        with open(f"{args.out}/{name}.jsonl", "w") as f:
            for _ in range(n):
                item = rng.choice(ITEMS)
                f.write(json.dumps({"prompt": rng.choice(QUESTIONS).format(item), "reference": table[item]}) + "\n")
    print(f"wrote the lookup task to {args.out}: table.json, policy_sft.jsonl, prompts.jsonl, eval_prompts.jsonl")


def tool(args):
    table = json.load(open(args.table))
    key = json.load(sys.stdin).get("key", "")
    if key not in table:
        sys.stderr.write(f"no item named {key!r}\n")
        sys.exit(1)
    print(f"{key}: {table[key]}")


def grade(question, trajectory):
    """1 when the trajectory looked up the item the question names and its last turn states the code returned."""
    blocks = re.split(r"\n*\[(assistant|tool [^\]]*|environment)\]\n", "\n" + trajectory)[1:]
    turns = list(zip(blocks[0::2], blocks[1::2]))
    results = [text for who, text in turns if who.startswith("tool")]
    answers = [text for who, text in turns if who == "assistant"]
    if not results or not answers or "<tool_call>" in answers[-1]:
        return 0.0
    row = re.match(r"\s*(\S+): (\d+)\s*$", results[-1])
    if not row or row.group(1) not in re.findall(r"\w+", question):
        return 0.0
    return 1.0 if re.search(r"\b%s\b" % row.group(2), answers[-1]) else 0.0


def judge(_args):
    out = []
    for sample in json.load(sys.stdin):
        question = sample["messages"][0]["content"]
        trajectory = sample["messages"][1]["content"]
        score = grade(question, trajectory)
        out.append({"id": sample["id"], "aggregate_reward_score": score,
                    "metrics_list": [{"name": "grounded", "value": score, "type": "Reward"}]})
    json.dump(out, sys.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", required=True)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--policy-rows", type=int, default=3000)
    m.add_argument("--follow-rate", type=float, default=0.5)
    m.add_argument("--prompts", type=int, default=400)
    m.add_argument("--eval-prompts", type=int, default=64)
    t = sub.add_parser("tool")
    t.add_argument("--table", required=True)
    sub.add_parser("judge")
    args = p.parse_args()
    {"make": make, "tool": tool, "judge": judge}[args.command](args)


if __name__ == "__main__":
    main()
