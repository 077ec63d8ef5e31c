"""A reward function written for Amazon Nova reinforcement fine-tuning (the Lambda contract: a list of samples with
id, messages and the dataset's fields in; id, aggregate_reward_score and metrics_list out), run unchanged by rlaif's
command backend through the three-line wrapper at the bottom."""
import json
import sys


def lambda_handler(event, context):
    return lambda_grader(event)


def lambda_grader(samples):
    results = []
    for sample in samples:
        answer = sample["messages"][-1]["content"]
        reference = sample.get("reference_answer", "")
        exact = 1.0 if reference and reference.strip().lower() in answer.lower() else 0.0
        brevity = 1.0 if len(answer) <= 40 else 0.0
        results.append({
            "id": sample["id"],
            "aggregate_reward_score": 0.75 * exact + 0.25 * brevity,
            "metrics_list": [{"name": "exact", "value": exact, "type": "Metric"},
                             {"name": "brevity", "value": brevity, "type": "Metric"}],
        })
    return results


if __name__ == "__main__":
    print(json.dumps(lambda_handler(json.load(sys.stdin), None)))
