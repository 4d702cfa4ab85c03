"""The nightly run's own records: one job run per run date, and the batches its steps
fan out to workers."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models

from subscriptions.models.common import in_choices


class JobRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ABANDONED = "abandoned", "Abandoned (its process stopped)"


class JobRun(models.Model):
    """One nightly run for one date: when, what each step did, what went wrong."""

    Status = JobRunStatus

    run_date = models.DateField(help_text="The date the run was for.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=32, default="beat", help_text="beat, command, ...")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life of the process running it."
    )
    abandoned_reason = models.TextField(blank=True)
    step = models.CharField(max_length=32, blank=True, help_text="The step running now.")
    progress_done = models.PositiveIntegerField(
        default=0, help_text="Records the running step has worked through so far."
    )
    counts = models.JSONField(default=dict, help_text="Per step: what it did, by outcome.")
    errors = models.JSONField(default=list, help_text="[{step, subscription, error}]")
    step_seconds = models.JSONField(default=dict, help_text="Per step: how long it took.")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.CheckConstraint(
                condition=in_choices("status", JobRunStatus), name="jobrun_status"
            ),
        ]

    def __str__(self) -> str:
        return f"Nightly run for {self.run_date} ({self.get_status_display()})"


class NightBatchStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a worker"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class NightBatch(models.Model):
    """One batch of one step of a nightly run, for any worker to take (the run fans its
    steps out across workers). A worker claims it for a while; one that dies leaves it
    to the next once the claim runs out."""

    Status = NightBatchStatus

    job_run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="batches")
    step = models.CharField(max_length=32)
    seq = models.PositiveIntegerField()
    ids = ArrayField(models.BigIntegerField())
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_until = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict)
    errors = models.JSONField(default=list)

    class Meta:
        ordering = ["job_run", "step", "seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["job_run", "step", "seq"], name="nightbatch_once_per_step_seq"
            ),
            models.CheckConstraint(
                condition=in_choices("status", NightBatchStatus), name="nightbatch_status"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step} batch {self.seq} of {self.job_run}"
