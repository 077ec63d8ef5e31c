# A command environment (docs/episodes.md) for the tests: three steps per episode; the reward of an action is its
# length in characters mod 3; a row with "fail" fails at its reset. Observations name the row and the turn.
# With --letter-a, a task with a known optimal policy for the trainer's tests: two steps, and an action earns 1 when it
# contains the letter "a", else 0.
import json, sys
letter_a = "--letter-a" in sys.argv[1:]
steps = {}
for line in sys.stdin:
    m = json.loads(line)
    i = m["id"]
    if m["op"] == "reset":
        if m["row"].get("fail"):
            print(json.dumps({"id": i, "error": "this row fails"}), flush=True)
            continue
        steps[i] = 0
        print(json.dumps({"id": i, "observation": "Start " + str(m["row"].get("name", "")), "reward": None, "done": False}), flush=True)
    elif m["op"] == "step":
        steps[i] += 1
        a = m["action"]
        reward = (1.0 if "a" in a else 0.0) if letter_a else len(a) % 3
        print(json.dumps({"id": i, "observation": "turn %d: you wrote %d characters" % (steps[i], len(a)),
                          "reward": reward, "done": steps[i] >= (2 if letter_a else 3)}), flush=True)
    else:
        steps.pop(i, None)
