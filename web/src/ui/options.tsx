// The <option> lists several forms share: fixed choices (priorities, roles), projects,
// members; and the assignee select of the new-task form and the task editor.
import type { Member, Project } from '../api/teams';
import { projectLabel } from '../api/teams';

export function ChoiceOptions<T extends string>(props: { values: readonly T[] }) {
  return (
    <>
      {props.values.map((value) => (
        <option value={value} key={value}>
          {value}
        </option>
      ))}
    </>
  );
}

export function ProjectOptions(props: { projects: Project[] }) {
  return (
    <>
      {props.projects.map((project) => (
        <option value={String(project.id)} key={project.id}>
          {projectLabel(project)}
        </option>
      ))}
    </>
  );
}

export function MemberOptions(props: { members: Member[] }) {
  return (
    <>
      {props.members.map((member) => (
        <option value={String(member.user_id)} key={member.user_id}>
          {member.username}
        </option>
      ))}
    </>
  );
}

/** "Nobody" or one of the members; an assignee not (yet) among them keeps an entry. */
export function AssigneeSelect(props: {
  members: Member[];
  value: number | null;
  onChange: (userId: number | null) => void;
  class?: string;
}) {
  const { value, members } = props;
  return (
    <label class={props.class}>
      Assignee
      <select
        name="assignee"
        value={value === null ? '' : String(value)}
        onChange={(e) => props.onChange(e.currentTarget.value ? Number(e.currentTarget.value) : null)}
      >
        <option value="">Nobody</option>
        <MemberOptions members={members} />
        {value !== null && !members.some((m) => m.user_id === value) && <option value={String(value)}>user {value}</option>}
      </select>
    </label>
  );
}
