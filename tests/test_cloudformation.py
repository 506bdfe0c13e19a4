"""The CloudFormation template: cfn-lint clean, deployed into moto's server, scaling wired up.

moto's CloudFormation creates the VPC-side resources (security groups, role, launch template,
load balancer, target group, listener, Auto Scaling group) but skips
``AWS::AutoScaling::ScalingPolicy`` and ``AWS::CloudWatch::Alarm``; those are created from the
template's own properties with boto3, so botocore validates every property name and value.
moto evaluates no alarms: the decision itself is ``deploy/scaling.py`` (tests/test_scaling.py).
"""

from __future__ import annotations

import ast
import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from deploy.scaling import DEFAULT_PARAMS, decide

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "cloudformation.yaml"
REGION = "us-east-1"
STACK = "emojinet-test"
ASG_NAME = f"{STACK}-emojinet"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/emojinet@sha256:" + "ab" * 32
TEST_AMI_PARAM = "/emojinet/test/gpu-ami-id"


def load_template() -> dict[str, Any]:
    """The template as plain JSON data (``!Ref`` → ``{"Ref": ...}``), parsed by cfn-lint."""
    from cfnlint.decode import decode_str

    data, errors = decode_str(TEMPLATE.read_text())
    assert not errors, errors
    plain: dict[str, Any] = json.loads(json.dumps(data))
    return plain


def test_cfn_lint_clean() -> None:
    exe = Path(sys.executable).with_name("cfn-lint")
    cmd = str(exe) if exe.exists() else shutil.which("cfn-lint")
    assert cmd, "cfn-lint is not installed"
    proc = subprocess.run(
        [cmd, str(TEMPLATE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A real moto server process on a free loopback port."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def client(moto_url: str, service: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]  # the stubs want a literal name
        service,
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _resolve(node: Any, refs: dict[str, Any]) -> Any:
    """Resolve ``Ref`` in the properties of the resources moto skips (nothing else is used)."""
    if isinstance(node, dict):
        if set(node) == {"Ref"}:
            return refs[node["Ref"]]
        assert not any(k.startswith("Fn::") for k in node), f"unhandled intrinsic in {node}"
        return {k: _resolve(v, refs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, refs) for v in node]
    return node


@pytest.fixture(scope="module")
def stack(moto_url: str) -> dict[str, Any]:
    """Deploy the template; return the parameters, physical ids and created policy/alarm names."""
    ec2 = client(moto_url, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{az}")[
            "Subnet"
        ]["SubnetId"]
        for i, az in enumerate("ab")
    ]
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    # AWS-owned /aws/service/... names are reserved in moto, and moto resolves a parameter's
    # SSM default even when a value is passed, so the default points at a test parameter.
    client(moto_url, "ssm").put_parameter(Name=TEST_AMI_PARAM, Value=ami, Type="String")
    template = load_template()
    template["Parameters"]["AmiId"]["Default"] = TEST_AMI_PARAM

    given = {
        "VpcId": vpc,
        "InstanceSubnetIds": ",".join(subnets),
        "LoadBalancerSubnetIds": ",".join(subnets),
        "AllowedIngressCidr": "10.0.0.0/8",
        "ImageUri": IMAGE,
        "ModelPath": "/opt/emojinet/models/emojinet-v3.safetensors",
    }
    cfn = client(moto_url, "cloudformation")
    cfn.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    status = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
    assert status == "CREATE_COMPLETE"

    params: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        value = given.get(name, spec.get("Default"))
        if spec["Type"] == "Number":
            value = int(value) if float(value).is_integer() else float(value)
        params[name] = value
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
        if r["LogicalResourceId"]
    }
    refs: dict[str, Any] = {**params, **physical}

    autoscaling = client(moto_url, "autoscaling")
    cloudwatch = client(moto_url, "cloudwatch")
    # Policies first: the alarm's AlarmActions refer to them.
    for kind in ("AWS::AutoScaling::ScalingPolicy", "AWS::CloudWatch::Alarm"):
        for logical, res in template["Resources"].items():
            if res["Type"] != kind:
                continue
            props = _resolve(res["Properties"], refs)
            if kind == "AWS::AutoScaling::ScalingPolicy":
                autoscaling.put_scaling_policy(PolicyName=logical, **props)
                # moto 5.2 answers "PolicyArn", not "PolicyARN": read it back instead.
                (policy,) = autoscaling.describe_policies(PolicyNames=[logical])["ScalingPolicies"]
                refs[logical] = policy["PolicyARN"]
            else:
                cloudwatch.put_metric_alarm(AlarmName=logical, **props)
    return {"params": params, "physical": physical, "refs": refs, "ami": ami, "subnets": subnets}


def test_template_has_the_scaling_resources() -> None:
    resources = load_template()["Resources"]
    types = {name: res["Type"] for name, res in resources.items()}
    assert types["BacklogTargetTracking"] == "AWS::AutoScaling::ScalingPolicy"
    assert types["QueueWaitStepScaleOut"] == "AWS::AutoScaling::ScalingPolicy"
    assert types["QueueWaitHighAlarm"] == "AWS::CloudWatch::Alarm"
    assert load_template()["Parameters"]["InstanceType"]["Default"] == "g5.xlarge"


def test_auto_scaling_group(moto_url: str, stack: dict[str, Any]) -> None:
    (asg,) = client(moto_url, "autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[ASG_NAME]
    )["AutoScalingGroups"]
    assert (asg["MinSize"], asg["MaxSize"], asg["DesiredCapacity"]) == (2, 10, 2)
    assert asg["HealthCheckType"] == "ELB"
    assert asg["TargetGroupARNs"] == [stack["physical"]["TargetGroup"]]
    assert sorted(asg["VPCZoneIdentifier"].split(",")) == sorted(stack["subnets"])
    assert {i["InstanceType"] for i in asg["Instances"]} == {"g5.xlarge"}
    assert len(asg["Instances"]) == 2


def test_launch_template_runs_the_container(moto_url: str, stack: dict[str, Any]) -> None:
    ec2 = client(moto_url, "ec2")
    (version,) = ec2.describe_launch_template_versions(
        LaunchTemplateId=stack["physical"]["LaunchTemplate"]
    )["LaunchTemplateVersions"]
    data = version["LaunchTemplateData"]
    assert data["InstanceType"] == "g5.xlarge"
    assert data["ImageId"] == stack["ami"]  # resolved from the SSM parameter
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["IamInstanceProfile"]["Arn"].endswith(stack["physical"]["InstanceProfile"])
    script = base64.b64decode(data["UserData"]).decode()
    assert script.startswith("#!/bin/bash\n")
    assert f'docker pull "{IMAGE}"' in script
    assert "--gpus device=0" in script
    # No GPU, no start: the server refuses the CPU instead of serving slowly and looking ready.
    assert "-e EMOJINET_DEVICE=cuda" in script
    # Logs go to the stack's CloudWatch Logs group, never blocking the server on a slow API.
    group = f"/emojinet/{STACK}"
    assert f"--log-driver awslogs --log-opt awslogs-region={REGION}" in script
    assert f"awslogs-group={group}" in script and "mode=non-blocking" in script
    logs = client(moto_url, "logs")
    (found,) = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert found["retentionInDays"] == 30
    assert "-p 8000:8000" in script
    assert 'EMOJINET_MODEL="/opt/emojinet/models/emojinet-v3.safetensors"' in script
    assert f'{{"AutoScalingGroupName": "{ASG_NAME}"}}' in script
    assert "EMOJINET_CLOUDWATCH_NAMESPACE=EmojiNet" in script
    # docker stop waits longer than the server drains; the drain matches the ALB's delay.
    assert "--stop-timeout 45" in script
    assert "EMOJINET_DRAIN_TIMEOUT_S=30" in script
    assert "${" not in script.replace("$(", "")  # every ${...} was substituted


def test_target_group_checks_readyz(moto_url: str, stack: dict[str, Any]) -> None:
    elbv2 = client(moto_url, "elbv2")
    arn = stack["physical"]["TargetGroup"]
    (tg,) = elbv2.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
    assert tg["HealthCheckPath"] == "/readyz"
    assert (tg["Port"], tg["Protocol"], tg["TargetType"]) == (8000, "HTTP", "instance")
    # moto ignores TargetGroupAttributes from CloudFormation: read the template's value.
    props = load_template()["Resources"]["TargetGroup"]["Properties"]
    attrs = {a["Key"]: a["Value"] for a in props["TargetGroupAttributes"]}
    assert attrs["deregistration_delay.timeout_seconds"] == "30"
    (listener,) = elbv2.describe_listeners(LoadBalancerArn=stack["physical"]["LoadBalancer"])[
        "Listeners"
    ]
    assert (listener["Port"], listener["Protocol"]) == (80, "HTTP")  # no certificate given
    assert listener["DefaultActions"][0]["TargetGroupArn"] == arn


def test_instance_role_is_minimal(moto_url: str, stack: dict[str, Any]) -> None:
    iam = client(moto_url, "iam")
    role = stack["physical"]["InstanceRole"]
    # moto does not attach a role's ManagedPolicyArns from CloudFormation: read the template.
    managed = load_template()["Resources"]["InstanceRole"]["Properties"]["ManagedPolicyArns"]
    assert {m["Fn::Sub"].rsplit("/", 1)[1] for m in managed} == {
        "AmazonSSMManagedInstanceCore",
        "AmazonEC2ContainerRegistryReadOnly",
    }
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if isinstance(doc, str):  # moto returns a role policy from CloudFormation as a repr()
        doc = ast.literal_eval(doc)
    # Without SlackSecretArn the Slack statement is AWS::NoValue (moto leaves it as a null).
    by_action = {str(s["Action"]): s for s in doc["Statement"] if s is not None}
    logs = str(["logs:CreateLogStream", "logs:PutLogEvents"])
    assert set(by_action) == {
        "cloudwatch:PutMetricData",
        "cloudformation:SignalResource",
        logs,
    }
    assert f"log-group:/emojinet/{STACK}" in str(by_action[logs]["Resource"])
    put = by_action["cloudwatch:PutMetricData"]
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": "EmojiNet"}}
    assert f":stack/{STACK}/" in by_action["cloudformation:SignalResource"]["Resource"]


def test_the_slack_secret_is_readable_only_when_given_and_never_in_argv() -> None:
    template = load_template()
    statements = template["Resources"]["InstanceRole"]["Properties"]["Policies"][0][
        "PolicyDocument"
    ]["Statement"]
    (conditional,) = [s for s in statements if "Fn::If" in s]
    condition, granted, otherwise = conditional["Fn::If"]
    assert condition == "HasSlack" and otherwise == {"Ref": "AWS::NoValue"}
    assert granted["Action"] == "secretsmanager:GetSecretValue"
    assert granted["Resource"] == {"Ref": "SlackSecretArn"}
    assert template["Parameters"]["SlackSecretArn"]["Default"] == ""
    data = template["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    user_data = data["UserData"]["Fn::Base64"]["Fn::Sub"]
    assert '--env-file "$SLACK_ENV"' in user_data and "install -m 600" in user_data
    assert "-e EMOJINET_SLACK" not in user_data
    # The one-liner that turns the secret into the env file does what it says.
    script = re.search(r"python3 -c '([^']+)'", user_data)
    assert script is not None
    secret = '{"signing_secret": "abc123", "bot_token": "xoxb-1-2"}'
    out = subprocess.run(
        [sys.executable, "-c", script.group(1)], input=secret, capture_output=True, text=True
    )
    assert out.stdout.splitlines() == [
        "EMOJINET_SLACK_SIGNING_SECRET=abc123",
        "EMOJINET_SLACK_BOT_TOKEN=xoxb-1-2",
    ]


def test_scaling_policies_and_alarm(moto_url: str, stack: dict[str, Any]) -> None:
    policies = {
        p["PolicyName"]: p
        for p in client(moto_url, "autoscaling").describe_policies(AutoScalingGroupName=ASG_NAME)[
            "ScalingPolicies"
        ]
    }
    tracking = policies["BacklogTargetTracking"]
    assert tracking["PolicyType"] == "TargetTrackingScaling"
    config = tracking["TargetTrackingConfiguration"]
    assert config["TargetValue"] == DEFAULT_PARAMS.backlog_target
    metric = config["CustomizedMetricSpecification"]
    assert (metric["Namespace"], metric["MetricName"], metric["Statistic"]) == (
        "EmojiNet",
        "Backlog",
        "Average",
    )
    assert metric["Dimensions"] == [{"Name": "AutoScalingGroupName", "Value": ASG_NAME}]

    step = policies["QueueWaitStepScaleOut"]
    assert (step["PolicyType"], step["AdjustmentType"]) == ("StepScaling", "ChangeInCapacity")
    assert [s["ScalingAdjustment"] for s in step["StepAdjustments"]] == [1, 2, 4]

    (alarm,) = client(moto_url, "cloudwatch").describe_alarms(AlarmNames=["QueueWaitHighAlarm"])[
        "MetricAlarms"
    ]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        "EmojiNet",
        "GPUQueueWait",
        "Average",
    )
    assert alarm["Dimensions"] == [{"Name": "AutoScalingGroupName", "Value": ASG_NAME}]
    assert alarm["Threshold"] == DEFAULT_PARAMS.queue_wait_alarm_ms
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert (alarm["Period"], alarm["EvaluationPeriods"]) == (60, 1)
    assert alarm["AlarmActions"] == [step["PolicyARN"]]


def test_published_metrics_drive_the_decision(moto_url: str, stack: dict[str, Any]) -> None:
    """Two instances publish statistic sets as the service does; moto aggregates; decide acts."""
    cloudwatch = client(moto_url, "cloudwatch")
    autoscaling = client(moto_url, "autoscaling")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    dims = [{"Name": "AutoScalingGroupName", "Value": ASG_NAME}]
    # Instance A: 6 Backlog samples averaging 30, 20 requests waiting 300 ms on average.
    # Instance B: 6 samples averaging 20, 10 requests waiting 100 ms.
    for backlog, (wait_sum, n) in [(30.0, (6000.0, 10 * 2)), (20.0, (1000.0, 10))]:
        cloudwatch.put_metric_data(
            Namespace="EmojiNet",
            MetricData=[
                {
                    "MetricName": "Backlog",
                    "Dimensions": dims,
                    "Timestamp": now,
                    "StatisticValues": {
                        "SampleCount": 6,
                        "Sum": backlog * 6,
                        "Minimum": 0,
                        "Maximum": backlog * 2,
                    },
                    "Unit": "Count",
                },
                {
                    "MetricName": "GPUQueueWait",
                    "Dimensions": dims,
                    "Timestamp": now,
                    "StatisticValues": {
                        "SampleCount": n,
                        "Sum": wait_sum,
                        "Minimum": 1,
                        "Maximum": 900,
                    },
                    "Unit": "Milliseconds",
                },
            ],
        )

    def average(name: str) -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace="EmojiNet",
            MetricName=name,
            Dimensions=dims,
            StartTime=now - timedelta(minutes=1),
            EndTime=now + timedelta(minutes=1),
            Period=60,
            Statistics=["Average"],
        )["Datapoints"]
        assert len(points) == 1, points
        return float(points[0]["Average"])

    backlog, wait = average("Backlog"), average("GPUQueueWait")
    assert backlog == pytest.approx(25.0)  # the per-instance average the target tracks
    assert wait == pytest.approx(7000 / 30)  # request-weighted, not the mean of 300 and 100

    (asg,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG_NAME])[
        "AutoScalingGroups"
    ]
    decision = decide(backlog, wait, asg["DesiredCapacity"], asg["MinSize"], asg["MaxSize"])
    # ceil(2 * 25 / 3) = 17 instances for a backlog of 25, clamped to MaxSize.
    assert (decision.action, decision.desired) == ("scale_out", asg["MaxSize"])

    autoscaling.set_desired_capacity(
        AutoScalingGroupName=ASG_NAME, DesiredCapacity=decision.desired
    )
    (asg,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG_NAME])[
        "AutoScalingGroups"
    ]
    assert asg["DesiredCapacity"] == decision.desired
    assert len(asg["Instances"]) == decision.desired
